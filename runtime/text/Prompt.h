//===- Prompt.h - RWKV chat prompt formatting (spec §5.4) -----------------===//
//
// Builds "System: ..\n\nUser: ..\n\nAssistant: ..\n\nUser: ..\n\nAssistant:"
// prompts. Messages are cleaned first because a blank line inside a message
// would look like a turn separator to the model.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TEXT_PROMPT_H
#define RWKV_RUNTIME_TEXT_PROMPT_H

#include <string>
#include <string_view>
#include <vector>

namespace rwkv {

enum class ChatRole { System, User, Assistant };

struct ChatMessage {
  ChatRole role;
  std::string content;
};

/// How the final "Assistant:" turn is opened (G1 reasoning models).
enum class ThinkMode {
  None,           // "Assistant:"
  Think,          // "Assistant: <think"
  FakeThink,      // "Assistant: <think>\n</think"
  FakeThinkShort, // "Assistant: <think></think"
};

/// "\r\n" -> "\n", runs of 2+ newlines -> one "\n", then strip leading and
/// trailing ASCII whitespace (space, \t, \n, \r, \v, \f).
std::string cleanChatText(std::string_view text);

/// "System"/"User"/"Assistant".
const char *chatRoleName(ChatRole role);

/// Formats the conversation; each message becomes "<Role>: <clean text>" and
/// turns are joined with "\n\n". If `openAssistantTurn`, an assistant turn
/// prefix (per `think`) is appended for the model to complete.
std::string formatChatPrompt(const std::vector<ChatMessage> &messages,
                             bool openAssistantTurn = true,
                             ThinkMode think = ThinkMode::None);

/// Shorthand for a single user message with an optional system turn.
std::string formatChatPrompt(std::string_view user,
                             std::string_view system = {},
                             ThinkMode think = ThinkMode::None);

} // namespace rwkv

#endif // RWKV_RUNTIME_TEXT_PROMPT_H
