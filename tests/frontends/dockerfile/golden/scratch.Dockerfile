FROM scratch
ENV PATH=/custom
COPY app /app
WORKDIR /work
RUN ["/app"]
CMD ["/app"]
