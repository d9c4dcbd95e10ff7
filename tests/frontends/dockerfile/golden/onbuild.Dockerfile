FROM onbuild-base AS withtriggers
RUN echo after triggers

FROM busybox AS parent
ONBUILD RUN echo from parent
ENV PARENT=1

FROM parent AS child
RUN echo child
