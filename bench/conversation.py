"""A scripted 60-turn conversation (Chinese and English) with facts planted early and asked late."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    planted: str  # what the user says in an early turn
    question: str  # what the user asks in a late turn
    needle: str  # the words that must reach the model for the question to be answerable


FACTS = [
    Fact("我的猫叫小橘,是一只很胖的橘猫。", "我的猫叫什么名字?", "小橘"),
    Fact("By the way, my flight to Tokyo is on the 14th.", "Remind me, what date is my flight to Tokyo?", "14th"),
    Fact("我住在杭州,离西湖不远。", "我住在哪个城市?", "杭州"),
    Fact("My sister Alice works as a nurse in Boston.", "What does my sister Alice do for a living?", "nurse"),
    Fact("我最喜欢的颜色是墨绿色。", "你还记得我最喜欢什么颜色吗?", "墨绿"),
    Fact("My favourite novel is Dune by Frank Herbert.", "Which novel did I say is my favourite?", "Dune"),
    Fact("提醒一下:我对花生过敏。", "我对什么食物过敏?", "花生"),
    Fact("My dentist appointment is at 3 pm on Friday.", "What time is my dentist appointment?", "3 pm"),
    Fact("我的车牌号是浙A·7K829。", "我的车牌号是多少?", "7K829"),
    Fact("I keep my spare house key under the blue flower pot.", "Where do I keep my spare house key?", "blue flower pot"),
]

# The same facts asked in the other language: recall must cross from Chinese to English and back.
CROSS_LANGUAGE = [
    Fact("", "What is my cat's name?", "小橘"),
    Fact("", "我飞东京的航班是几号?", "14th"),
]

TOPICS_ZH = ["红烧肉怎么做", "怎样提高睡眠质量", "量子计算是什么", "推荐几本历史书", "如何学习吉他", "长城有多长",
             "咖啡和茶哪个更健康", "怎么养多肉植物", "解释一下通货膨胀", "周末去哪里徒步", "如何准备面试",
             "写一首关于秋天的短诗", "Python 的列表推导式怎么用", "为什么天空是蓝色的", "怎样做好时间管理",
             "介绍一下敦煌莫高窟", "如何挑选跑鞋", "什么是区块链", "怎么做番茄炒蛋", "给我讲个笑话"]
TOPICS_EN = ["how to brew pour-over coffee", "the causes of the French Revolution", "tips for learning Japanese",
             "how solar panels work", "a good stretching routine", "what a hash map is", "how to plan a budget",
             "the rules of chess castling", "why leaves change colour", "how to write a cover letter",
             "the plot of Hamlet in brief", "how vaccines train the immune system", "what makes sourdough rise",
             "how to fix a flat bicycle tyre", "the history of the printing press", "good habits for remote work",
             "how tides work", "what an index fund is", "how to keep basil alive", "how noise-cancelling works"]


def canned_answer(user_text: str, turn: int) -> str:
    """A plausible ~80-token answer; the bench measures what is sent, not what a model would say."""
    if any(ord(ch) > 0x2E80 for ch in user_text):
        return (f"喵~关于「{user_text[:20]}」,Atri 想了想:这是个好问题!第一,先弄清楚你真正想要的结果;"
                f"第二,一步一步来,不要着急;第三,遇到困难就休息一下再试。希望对你有帮助,还有什么想聊的吗?(第{turn}轮)")
    return (f"Meow~ About \"{user_text[:40]}\": here is how Atri sees it. First, get clear on what you want. "
            f"Second, take it one step at a time and check each step before the next. Third, when you get stuck, "
            f"rest a little and come back with fresh eyes. Anything else you would like to talk about? (turn {turn})")


def script(turns: int = 60) -> list[tuple[str, Fact | None]]:
    """The user's messages in order, each with the fact it asks about (late questions) or None."""
    planted = [(f.planted, None) for f in FACTS]
    fillers = []
    for i in range(turns - 2 * len(FACTS) - len(CROSS_LANGUAGE)):
        topics = TOPICS_ZH if i % 2 == 0 else TOPICS_EN
        topic = topics[(i // 2) % len(topics)]
        fillers.append((f"{topic}?" if topics is TOPICS_ZH else f"Can you tell me about {topic}?", None))
    questions = [(f.question, f) for f in FACTS + CROSS_LANGUAGE]
    # facts in the first turns, one filler between facts, questions in the last turns
    opening = []
    for fact_turn, filler in zip(planted, fillers[: len(planted)]):
        opening += [fact_turn, filler]
    return opening + fillers[len(planted):] + questions
