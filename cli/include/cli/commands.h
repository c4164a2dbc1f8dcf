// The `ledger` subcommands. Each registers its options on the CLI11 app and returns a runner.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "storage/store.h"

namespace ledger::cli {

using Runner = std::function<int()>;

Runner AddSubmit(CLI::App& app);
Runner AddBalance(CLI::App& app);
Runner AddLimits(CLI::App& app);
Runner AddEvents(CLI::App& app);
Runner AddDemo(CLI::App& app);
Runner AddBroker(CLI::App& app);
Runner AddServe(CLI::App& app);
Runner AddTail(CLI::App& app);
Runner AddClusterStatus(CLI::App& app);
Runner AddProject(CLI::App& app);
Runner AddKeygen(CLI::App& app);
Runner AddCheckpoint(CLI::App& app);
Runner AddReplay(CLI::App& app);
Runner AddClearing(CLI::App& app);
Runner AddCloseDay(CLI::App& app);
Runner AddReconcile(CLI::App& app);
Runner AddBench(CLI::App& app);
Runner AddScrub(CLI::App& app);
Runner AddRestore(CLI::App& app);
Runner AddBackup(CLI::App& app);
Runner AddGateway(CLI::App& app);
Runner AddNotifier(CLI::App& app);
Runner AddMerchantKeys(CLI::App& app);
Runner AddProducerKeyCommand(CLI::App& app);
Runner AddCustomerEnroll(CLI::App& app);
// Names the first differing key of each projection between `live` and its events rebuilt (for LedgerOptions).
std::string DescribeStateDifferences(const Store& live);

}  // namespace ledger::cli
