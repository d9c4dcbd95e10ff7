# golden: build-arg CACHE=pip
FROM busybox AS deps
RUN mkdir -p /deps /cache

FROM busybox
ARG CACHE
RUN --mount=type=bind,from=deps,source=/deps,target=/mnt/deps \
    --mount=type=bind,from=deps,target=/mnt/all,rw \
    --mount=type=bind,source=src,target=/src \
    --mount=target=/ctx \
    --mount=type=bind,from=alpine:3.19,source=/etc,target=/alpine-etc \
    ls
RUN --mount=type=cache,target=/root/.cache \
    --mount=type=cache,target=/var/cache/${CACHE},id=${CACHE},sharing=private \
    --mount=type=cache,target=/locked,sharing=locked,ro \
    --mount=type=cache,target=/owned,mode=0700,uid=1000,gid=1000 \
    --mount=type=cache,target=/seeded,from=deps,source=/cache \
    --mount=type=cache,target=relative \
    ls
RUN --mount=type=tmpfs,target=/tmp \
    --mount=type=tmpfs,target=/big,size=64m \
    ls
RUN --mount=type=secret,id=token \
    --mount=type=secret,id=key,target=/etc/key,required,mode=0440,uid=1,gid=2 \
    --mount=type=secret,id=aws,env=AWS_TOKEN \
    --mount=type=secret,target=/run/secrets/from-target \
    ls
RUN --mount=type=ssh \
    --mount=type=ssh,id=github,target=/ssh.sock,required=true,mode=0666,uid=1000 \
    ls
