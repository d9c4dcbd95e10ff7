FROM busybox
ADD https://example.com/archive.tar.gz /downloads/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/file.txt /file.txt
ADD https://example.com/ /unnamed
ADD https://github.com/moby/buildkit.git#v0.11.6 /buildkit
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#master:frontend /frontend
ADD git@github.com:moby/buildkit.git /ssh-git
ADD local.tar.gz /unpacked/
ADD --unpack=false local.tar.gz /not-unpacked/
ADD --chown=app --chmod=755 script.sh /usr/local/bin/
