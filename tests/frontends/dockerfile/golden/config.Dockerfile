FROM busybox
MAINTAINER Jane Doe <jane@example.invalid>
ENV PORT=8080
LABEL a=1 b="two words"
LABEL legacy value
EXPOSE 80 443/tcp 53/udp 8000-8002/tcp 9000/SCTP ${PORT}
ENTRYPOINT ["/bin/app"]
CMD ["--serve"]
ENTRYPOINT /bin/app --shell
CMD run now
USER app:app
WORKDIR /srv
WORKDIR data
WORKDIR /
SHELL ["/bin/sh", "-eux", "-c"]
VOLUME ["/data", "/logs"]
VOLUME /cache [/literal]
STOPSIGNAL 9
HEALTHCHECK NONE
HEALTHCHECK --interval=1m30s --timeout=10s --start-period=5s --retries=3 CMD ["curl", "-f", "http://localhost/"]
HEALTHCHECK --start-interval=2s CMD curl -f http://localhost/ || exit 1
ONBUILD RUN echo triggered
ONBUILD COPY . /app
