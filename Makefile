# Developer shortcuts; the README's two commands are the real interface.
.PHONY: demo test bench
demo:
	./scripts/demo
test:
	./scripts/test
bench:
	for f in bench/*.py; do echo "== $$f"; .venv/bin/python $$f || exit 1; done
