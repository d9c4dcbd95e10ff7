FROM busybox
RUN echo shell form
RUN ["/bin/echo", "exec", "form"]
SHELL ["/bin/bash", "-eu", "-c"]
RUN echo through bash
RUN <<EOF
echo heredoc script
