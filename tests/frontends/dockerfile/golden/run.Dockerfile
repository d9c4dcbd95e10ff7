FROM busybox
RUN echo shell form
RUN ["/bin/echo", "exec", "form"]
SHELL ["/bin/bash", "-eu", "-c"]
RUN echo through bash
RUN <<EOF
echo heredoc script
EOF
RUN <<-EOF
	#!/usr/bin/env python3
	print("shebang")
EOF
RUN cat <<A >/a && cat <<B >/b
alpha
A
beta
B
RUN --network=none echo offline
RUN --network=host echo host
RUN --network=default echo default
RUN --security=insecure echo insecure
RUN --security=sandbox echo sandbox
WORKDIR relative
RUN pwd
