# Stand-in for the public redis:7.2-bookworm image, built on the test base (no registry here);
# the tests only. Debian bookworm's Redis 7.0; the command comes from docker-compose.yaml.
ARG BASE
FROM ${BASE}
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /var/lib/redis
CMD ["redis-server"]
