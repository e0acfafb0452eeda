# Sources of the chat-template renderer (torch-free, part of reft_base). Paths relative to the
# project root.
list(APPEND REFT_BASE_SOURCES
  src/chat/chat_template.cpp
  src/chat/filters.cpp
  src/chat/interpreter.cpp
  src/chat/lexer.cpp
  src/chat/methods.cpp
  src/chat/parser.cpp
  src/chat/value.cpp
)
