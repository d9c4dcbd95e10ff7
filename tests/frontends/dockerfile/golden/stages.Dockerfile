ARG BASE=busybox
ARG TAG
FROM ${BASE} AS base
RUN echo base > /base

FROM --platform=linux/arm64 busybox AS arm
RUN uname -m > /arch

FROM base AS child
RUN cat /base

FROM scratch AS files
COPY --from=base /base /from-base
COPY --from=1 /arch /from-index
COPY --from=alpine:3.19 /etc/alpine-release /from-image

FROM busybox${TAG}
COPY --from=files / /files/
COPY --from=child /base /child-base
