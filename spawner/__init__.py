"""erchub.spawner: runtime images (repo2docker with erchub's docker-SDK engine and pip buildpack)."""
