# Sources of reft_base for torch.save archives (zip container + pickle subset). Paths relative to the
# project root. REFT_BASE_SOURCES accumulates the torch-free sources.
list(APPEND REFT_BASE_SOURCES
  src/pickle/archive_tensor.cpp
  src/pickle/pickle_writer.cpp
  src/pickle/torch_archive.cpp
  src/pickle/torch_globals.cpp
  src/pickle/torch_save.cpp
  src/pickle/unpickler.cpp
  src/pickle/zip_reader.cpp
  src/pickle/zip_writer.cpp
)
