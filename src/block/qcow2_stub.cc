#include "block/open_backend.h"

namespace kumo::block {

Result<std::unique_ptr<BlockBackend>> open_qcow2_backend(const std::string& path,
                                                         const OpenOptions&) {
  return invalid_input("'{}': qcow2 is not supported yet", path);
}

}  // namespace kumo::block
