# Sources of reft_base for torch.save archives (zip container + pickle subset). Paths relative to the
# project root. REFT_BASE_SOURCES accumulates the torch-free sources.
list(APPEND REFT_BASE_SOURCES
)
