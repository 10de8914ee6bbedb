"""Local kbatch: the real kbatch-proxy app over a local job runner (see docs/kbatch.md)."""
