#pragma once
// The error a filter, method or operator throws without knowing where in the template it is; the
// interpreter adds the location of the expression being evaluated.

#include "reft/error.h"

namespace reft::chat {

class EvalError : public Error {
 public:
  explicit EvalError(const std::string& message) : Error(message) {}
};

}  // namespace reft::chat
