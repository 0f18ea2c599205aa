#include "operators/volume.h"

#include <array>

namespace shortfall::operators {

std::string_view CustomsStatusName(size_t status) {
  static constexpr std::array<std::string_view, kCustomsStatusCount> kNames = {
      "unspecified", "filed", "accepted", "hold", "hold_released", "exam_selected", "released",
      "refused"};
  return status < kNames.size() ? kNames[status] : "unknown";
}

}  // namespace shortfall::operators
