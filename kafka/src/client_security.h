// The TLS and SASL settings every Kafka client of this process is made with (kafka.h: SetClientSecurity),
// for the sources that build librdkafka configurations.
#pragma once

#include <librdkafka/rdkafka.h>

namespace ledger::kafka {

// Sets them on `conf` (checked when they were set, so this cannot fail).
void ApplyClientSecurity(rd_kafka_conf_t* conf);

}  // namespace ledger::kafka
