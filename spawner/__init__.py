"""erchub.spawner: runtime images (repo2docker, erchub's docker-SDK engine, pip buildpack)."""
