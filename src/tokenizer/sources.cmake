# Sources of the reft_base library (tokenizers). Paths relative to the project root.
list(APPEND REFT_BASE_SOURCES
  src/tokenizer/added_vocabulary.cpp
  src/tokenizer/components.cpp
  src/tokenizer/decoders.cpp
  src/tokenizer/load_json.cpp
  src/tokenizer/load_sentencepiece.cpp
  src/tokenizer/spm_processor.cpp
  src/tokenizer/load_vocab_files.cpp
  src/tokenizer/models.cpp
  src/tokenizer/normalizers.cpp
  src/tokenizer/pipeline_tokenizer.cpp
  src/tokenizer/post_processors.cpp
  src/tokenizer/pre_tokenizers.cpp
  src/tokenizer/regex.cpp
  src/tokenizer/tokenizer.cpp
  src/tokenizer/tokenizer_builder.cpp
  src/tokenizer/tokenizer_config.cpp
  src/tokenizer/unicode.cpp
)
