# The "containerised" lab host: the lab image plus the Docker CLI, so that `docker exec` on this
# host reaches the app and database containers through the mounted engine socket.
ARG LAB_IMAGE
FROM ${LAB_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
