# Sources of the reft_base library (tokenizers). Paths relative to the project root.
list(APPEND REFT_BASE_SOURCES
  src/tokenizer/tokenizer.cpp
)
