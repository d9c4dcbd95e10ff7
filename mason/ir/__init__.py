"""The IR: LLB ops, graphs, digests, the protobuf codec, the builder API, image config, source
locations and errors, Docker path patterns and the image-metadata resolver interface.

``mason.ir`` imports nothing else of mason.
"""
