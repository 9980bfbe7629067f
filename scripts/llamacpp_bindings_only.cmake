# Included right after llama.cpp's own project() call (CMAKE_PROJECT_llama.cpp_INCLUDE, set by
# scripts/install_llamacpp.sh). llama-cpp-python forces LLAMA_BUILD_COMMON on before that
# call, yet its Python code loads only libllama and libggml*: the common library (argument
# parsing, chat templates with nlohmann::json, an HTTP client) is about half the compile's CPU
# time (measured: 492 CPU-seconds without it, 476 s on two busy cores with it) and never used.
# Turning it off here builds ggml, ggml-base, ggml-cpu and llama only.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama-cpp-python loads libllama and libggml only" FORCE)
