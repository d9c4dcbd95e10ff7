"""Frontend images: BuildKit's gateway protocol on mason's side (:mod:`.run` starts the image,
:mod:`.bridge` serves ``LLBBridge`` to it, :mod:`.driver` turns its result into a lowering)."""
