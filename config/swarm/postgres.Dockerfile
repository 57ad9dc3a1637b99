# PostgreSQL of erchub's Swarm stack: Debian's postgresql on the local base image (no Docker Hub).
# postgres-entrypoint.sh makes the database cluster in the volume at its first start, with the
# role and the databases the stack's services use.
ARG BASE_IMAGE=erchub/base:bookworm
FROM ${BASE_IMAGE}

# no cluster at install time (Debian's package makes `main` otherwise): the entrypoint makes
# one in the volume
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common \
 && echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data

COPY postgres-entrypoint.sh /usr/local/bin/erchub-postgres
RUN chmod 0755 /usr/local/bin/erchub-postgres
ENV PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
CMD ["erchub-postgres"]
