"""The Dockerfile frontend: syntax layer (lark grammar → generic node tree), instructions layer
(typed, validated instruction objects), shell-word expansion and lowering to LLB.
Imports only ``mason.ir`` (and lark, in the modules that parse)."""
