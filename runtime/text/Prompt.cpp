//===- Prompt.cpp - RWKV chat prompt formatting (spec §5.4) ---------------===//

#include "runtime/text/Prompt.h"

using namespace rwkv;

static bool isAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

std::string rwkv::cleanChatText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
      continue; // "\r\n" -> "\n"
    if (c == '\n' && !out.empty() && out.back() == '\n')
      continue; // collapse newline runs
    out += c;
  }
  size_t b = 0, e = out.size();
  while (b < e && isAsciiSpace(out[b]))
    ++b;
  while (e > b && isAsciiSpace(out[e - 1]))
    --e;
  return out.substr(b, e - b);
}

const char *rwkv::chatRoleName(ChatRole role) {
  switch (role) {
  case ChatRole::System:
    return "System";
  case ChatRole::User:
    return "User";
  case ChatRole::Assistant:
    return "Assistant";
  }
  return "User";
}

std::string rwkv::formatChatPrompt(const std::vector<ChatMessage> &messages,
                                   bool openAssistantTurn, ThinkMode think) {
  std::string out;
  for (const ChatMessage &m : messages) {
    if (!out.empty())
      out += "\n\n";
    out += chatRoleName(m.role);
    out += ": ";
    out += cleanChatText(m.content);
  }
  if (!openAssistantTurn)
    return out;
  if (!out.empty())
    out += "\n\n";
  out += "Assistant:";
  switch (think) {
  case ThinkMode::None:
    break;
  case ThinkMode::Think:
    out += " <think";
    break;
  case ThinkMode::FakeThink:
    out += " <think>\n</think";
    break;
  case ThinkMode::FakeThinkShort:
    out += " <think></think";
    break;
  }
  return out;
}

std::string rwkv::formatChatPrompt(std::string_view user,
                                   std::string_view system, ThinkMode think) {
  std::vector<ChatMessage> messages;
  if (!cleanChatText(system).empty())
    messages.push_back({ChatRole::System, std::string(system)});
  messages.push_back({ChatRole::User, std::string(user)});
  return formatChatPrompt(messages, true, think);
}
