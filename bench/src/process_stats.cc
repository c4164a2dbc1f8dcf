#include "bench/process_stats.h"

#include <sys/resource.h>

#include <fstream>
#include <string>

namespace ledger::bench {

int64_t WrittenBytes() {
  std::ifstream io("/proc/self/io");
  std::string name;
  int64_t value = 0;
  while (io >> name >> value) {
    if (name == "write_bytes:") return value;
  }
  return 0;
}

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

double CurrentRssMiB() {
  std::ifstream status("/proc/self/status");
  std::string name;
  while (status >> name) {
    if (name == "VmRSS:") {
      double kib = 0;
      status >> kib;
      return kib / 1024.0;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace ledger::bench
