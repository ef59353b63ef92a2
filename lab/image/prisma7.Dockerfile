# The Prisma 7 lab host (docs/lab.md): the lab image with Prisma 7.10.1 in the app's node_modules
# instead of 6.19.3, and a Node that Prisma 7 accepts (^20.19 || ^22.12 || >=24; bookworm's nodejs is 18):
# the build machine's own node binary (Debian bookworm, same glibc), since the hosts cannot reach a
# Node download. Built by scripts/lab.sh from a context holding node, node_modules (the 7.10.1 oracle
# cache), the schema-engine stand-in and the CLI wrapper.
ARG LAB_IMAGE
FROM ${LAB_IMAGE}

COPY node /usr/local/bin/node
RUN rm -rf /opt/schooliat/repo/Backend/node_modules
COPY node_modules /opt/schooliat/repo/Backend/node_modules
COPY schema-engine.sh schema-engine-shim.mjs prisma7-offline.sh /opt/lab/
# Lab only: node_modules/.bin/prisma becomes a wrapper that points the CLI at the schema-engine stand-in
# (Prisma 7 spawns a native engine binary that cannot be downloaded here), then runs the real 7.10.1 CLI.
RUN ln -sf /opt/lab/prisma7-offline.sh /opt/schooliat/repo/Backend/node_modules/.bin/prisma \
 && chmod 0755 /opt/lab/prisma7-offline.sh /opt/lab/schema-engine.sh /usr/local/bin/node \
 && node --version
