"""erchub.spawner: runtime images (repo2docker, erchub's docker-SDK engine, pip buildpack) and
the hub's session spawners.

builder (ImageBuilder) with hashing, reachability and wheel; buildpacks (PipBuildPack); engine
(DockerSDKEngine); clients (the one Docker client factory); network (the sessions' network);
spawner (ERCSpawner, LocalERCSpawner) with session and session_build; swarm (SwarmERCSpawner:
sessions as Swarm services) with working_copy (what a session's container runs first).
"""
