//===- PromptTest.cpp - Chat prompt formatting tests ----------------------===//

#include "runtime/text/Prompt.h"
#include "TestUtil.h"

#include <gtest/gtest.h>

using namespace rwkv;

namespace {

TEST(Prompt, CleanChatText) {
  EXPECT_EQ(cleanChatText("  a\r\n\r\nb\n\n\nc \t\n"), "a\nb\nc");
  EXPECT_EQ(cleanChatText("one\ntwo"), "one\ntwo");
  EXPECT_EQ(cleanChatText("\n\n  \n"), "");
  EXPECT_EQ(cleanChatText("你好\n\n世界"), "你好\n世界");
}

TEST(Prompt, SingleTurnMatchesSpecTokens) {
  std::string p = formatChatPrompt("hi");
  EXPECT_EQ(p, "User: hi\n\nAssistant:");
  EXPECT_EQ(test::worldTokenizer().encode(p),
            (std::vector<int32_t>{24281, 59, 4571, 261, 5585, 41693, 59}));
  EXPECT_EQ(formatChatPrompt("  what\r\n\r\nnow? ", "Be brief.\n\n"),
            "System: Be brief.\n\nUser: what\nnow?\n\nAssistant:");
}

TEST(Prompt, MultiTurnAndThinkModes) {
  std::vector<ChatMessage> msgs = {{ChatRole::User, "a"},
                                   {ChatRole::Assistant, "b\n\n"},
                                   {ChatRole::User, "c"}};
  EXPECT_EQ(formatChatPrompt(msgs),
            "User: a\n\nAssistant: b\n\nUser: c\n\nAssistant:");
  EXPECT_EQ(formatChatPrompt(msgs, false),
            "User: a\n\nAssistant: b\n\nUser: c");
  std::vector<ChatMessage> one = {{ChatRole::User, "q"}};
  EXPECT_EQ(formatChatPrompt(one, true, ThinkMode::Think),
            "User: q\n\nAssistant: <think");
  EXPECT_EQ(formatChatPrompt(one, true, ThinkMode::FakeThink),
            "User: q\n\nAssistant: <think>\n</think");
  EXPECT_EQ(formatChatPrompt(one, true, ThinkMode::FakeThinkShort),
            "User: q\n\nAssistant: <think></think");
  EXPECT_STREQ(chatRoleName(ChatRole::System), "System");
}

} // namespace
