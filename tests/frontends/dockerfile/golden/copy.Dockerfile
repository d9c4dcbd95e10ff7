# golden: exclude *.log !keep.log tmp
# golden: target app
FROM busybox AS app
WORKDIR /app
COPY a.txt .
COPY a.txt b.txt dir/
COPY *.go ./
COPY src /srcdir
COPY src/ /srcdir2/
COPY --chown=app:staff a.txt /owned-by-name
COPY --chown=1000:1000 a.txt /owned-by-id
COPY --chown=1000 a.txt /owned-user-only
COPY --chmod=640 a.txt /mode-octal
COPY --chmod=u+x,g=r a.txt /mode-symbolic
COPY --link a.txt /linked
COPY --link --chown=1:1 b.txt c.txt /linked-dir/
COPY --parents a/b/c.txt ./x/./y/z.txt /parents/
COPY --exclude=*.tmp --exclude=cache src /excluded/
COPY <<EOF /heredoc.txt
hello $HOME
EOF
COPY <<'RAW' <<-TABS /docs/
raw $HOME
RAW
	tabbed
TABS

FROM scratch
COPY --link a.txt /
