"""The local backend: GGUF models run in-process by llama.cpp."""
