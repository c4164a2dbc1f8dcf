// Goal: a secret file gives its first line, trimmed, and only when it is a regular file of this user that no
// one else may read; anything else is refused with a message that names the setting and never the secret.
#include "core/secret_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace ledger {
namespace {

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "ledger-secret-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A file holding `text` with `mode`; returns its path.
  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }

  std::string dir_;
};

TEST_F(SecretFileTest, TheFirstLineTrimmedOfSpacesTabsAndACarriageReturn) {
  EXPECT_EQ(ReadSecretFile("pin_file", Write("a", " \t482913\r\nsecond line\n")).value(), "482913");
  EXPECT_EQ(ReadSecretFile("pin_file", Write("b", "pass word")).value(), "pass word");  // inner space kept
  EXPECT_EQ(ReadSecretFile("pin_file", Write("c", std::string(4096, 'x'))).value(), std::string(4096, 'x'));
}

TEST_F(SecretFileTest, RefusedWithoutTheSecretInTheMessage) {
  struct Case {
    const char* what;
    std::string path;
    const char* says;
  };
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(Write("target", "482913\n").c_str(), link.c_str()), 0);
  const Case cases[] = {
      {"open to its group", Write("group", "482913\n", 0640), "open to no one else"},
      {"open to others", Write("others", "482913\n", 0604), "open to no one else"},
      {"an empty first line", Write("empty", "\n482913\n"), "holds nothing on its first line"},
      {"only spaces", Write("spaces", " \t\r\n"), "holds nothing on its first line"},
      {"an empty file", Write("nothing", ""), "holds nothing on its first line"},
      {"over 4 KiB", Write("big", std::string(4097, 'x')), "over 4 KiB"},
      {"a link", link, "cannot open"},
      {"a folder", dir_, "not a regular file"},
      {"missing", dir_ + "/missing", "cannot open"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Result<std::string> secret = ReadSecretFile("[pkcs11] pin_file", c.path);
    ASSERT_FALSE(secret.ok());
    EXPECT_EQ(secret.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(secret.status().message().find("[pkcs11] pin_file"), std::string::npos);
    EXPECT_NE(secret.status().message().find(c.says), std::string::npos) << secret.status().message();
    EXPECT_EQ(secret.status().message().find("482913"), std::string::npos) << secret.status().message();
  }
}

}  // namespace
}  // namespace ledger
