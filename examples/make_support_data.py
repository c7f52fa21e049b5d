"""Writes the bundled example data: synthetic customer-support messages for three classification tasks.

  python examples/make_support_data.py   # from the repo root; rewrites examples/support/{train,validation}.jsonl

Every message is written to a fictional company, Brightwave (broadband plans, home devices and apps), and composed
from building blocks written for this file: an optional greeting, a topic-specific problem, question or thank-you,
details (order numbers, amounts, dates), sentiment phrases, urgency cues, a sign-off, and occasional typos or
lowercase. No real data is used. The output is deterministic: the same bytes on every run.

Each row is `{"text": ..., "labels": [sentiment, urgency, topic]}` (the order of `config.data.label_order`):
  sentiment  0 negative, 1 neutral, 2 positive          (about 45% / 35% / 20%)
  urgency    0 low, 1 high                               (about 35% high; negative messages more often urgent)
  topic      0 billing, 1 technical, 2 shipping, 3 account

Training rows only (validation rows are clean and fully labelled):
  - about 3% carry label noise: one task's label replaced by another class;
  - about 4% have `null` and 1% have `-1` for one task (no label for that task);
  - about 5% carry a `weight`: mostly one positive number, a few a list of one number per task.
Texts are unique across both files.
"""

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "support"
SPLITS = (("train", 3200, 1234), ("validation", 800, 5678))  # name, rows, seed

SENTIMENT_P = (0.45, 0.35, 0.20)  # negative, neutral, positive
HIGH_URGENCY_P = (0.52, 0.25, 0.12)  # P(high urgency | sentiment)
TOPIC_P = (0.31, 0.30, 0.21, 0.18)  # billing, technical, shipping, account
LABEL_NOISE_P, NULL_P, MINUS_ONE_P, WEIGHT_P = 0.03, 0.04, 0.01, 0.05

# --- Slots: {name} in a phrase is replaced by a fresh random value. ---------------------------------------------

PLANS = ["Starter", "Plus", "Pro", "Family", "Business", "Fibre 500", "Unlimited"]
DEVICES = ["Hub 2", "Pulse router", "Nova tablet", "Echo speaker", "Mini cam", "mesh extender", "TV box"]
APPS = ["Brightwave app", "Brightwave Home app", "desktop client", "web portal", "Brightwave TV app"]
NAMES = ["Maria", "Tom", "Aisha", "José", "Priya", "Ken", "Zoë", "Daniel", "Fatima", "Liam", "Chen", "Olga"]
CITIES = ["Leeds", "Lyon", "Denver", "Porto", "Malmö", "Austin", "Cork", "Utrecht", "Brno", "Tampa"]
CARRIERS = ["ParcelPoint", "SwiftShip", "the courier", "Rapido Post", "the delivery company"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def _amount(rng: random.Random) -> str:
  return rng.choice("$$$€£") + f"{rng.randint(5, 240)}.{rng.choice(['00', '99', '49', '50', '95'])}"


def _date(rng: random.Random) -> str:  # reads after "on": "on March 3", "on Friday", "on the 14th", "on 14/3"
  return rng.choice(
    [
      f"{rng.choice(MONTHS)} {rng.randint(1, 28)}",
      rng.choice(WEEKDAYS),
      f"the {rng.randint(4, 28)}th",
      f"{rng.randint(1, 28)}/{rng.randint(1, 12)}",
    ]
  )


SLOTS: dict[str, Callable[[random.Random], str]] = {
  "plan": lambda r: r.choice(PLANS),
  "device": lambda r: r.choice(DEVICES),
  "app": lambda r: r.choice(APPS),
  "name": lambda r: r.choice(NAMES),
  "city": lambda r: r.choice(CITIES),
  "carrier": lambda r: r.choice(CARRIERS),
  "amount": _amount,
  "date": _date,
  "month": lambda r: r.choice(MONTHS),
  "days": lambda r: str(r.randint(2, 15)),
  "order": lambda r: r.choice(["#", "BW-", "#BW"]) + str(r.randint(100000, 999999)),
  "invoice": lambda r: f"INV-{r.randint(2021, 2025)}-{r.randint(1, 9999):04d}",
  "card": lambda r: f"{r.randint(0, 9999):04d}",
  "code": lambda r: str(r.randint(100, 999)),
  "email": lambda r: f"{r.choice(NAMES).lower()}.{r.choice(['k', 'm', 'r', 'w'])}{r.randint(1, 99)}@example.com",
}


def fill(phrase: str, rng: random.Random) -> str:
  return re.sub(r"\{(\w+)\}", lambda m: SLOTS[m.group(1)](rng), phrase)


def sentence(phrase: str, rng: random.Random) -> str:
  """A filled phrase that starts a sentence: first letter capitalised."""
  text = fill(phrase, rng)
  return text[0].upper() + text[1:]


# --- Topic blocks: the issue as a noun phrase, as a factual report, and as a neutral question. ----------------

ISSUES = [  # billing
  [
    "the double charge on my card ending {card}",
    "my refund for {order}",
    "invoice {invoice}",
    "the price increase on the {plan} plan",
    "a {amount} charge I don't recognise",
    "my {plan} renewal fee",
    "the late fee on my last bill",
    "the direct debit that failed on {date}",
    "my bill for {month}",
    "the prorated charge after upgrading to {plan}",
    "the promo discount missing from my bill",
  ],
  [  # technical
    "the {app} crashing on startup",
    "the login error in the {app}",
    "the wifi dropping on my {device}",
    "sync between the {app} and my {device}",
    "the firmware update on my {device}",
    "error code E-{code}",
    "my {device} not connecting",
    "the black screen on the {device}",
    "slow speeds on the {plan} plan",
    "the {app} freezing when I open settings",
    "the bug where notifications never arrive",
  ],
  [  # shipping
    "my parcel {order}",
    "the tracking for {order}",
    "the delivery of my {device}",
    "the wrong item in {order}",
    "the damaged box that arrived on {date}",
    "my replacement {device}",
    "the missing charger from {order}",
    "the return label for {order}",
    "the delivery slot for my {device}",
    "my order stuck in {city}",
  ],
  [  # account
    "my password reset",
    "changing the email on my account to {email}",
    "closing my account",
    "two-factor authentication on my account",
    "my profile details",
    "the account lock after too many attempts",
    "merging my two accounts",
    "adding a second user to my {plan} account",
    "the username change I requested",
    "deleting my personal data",
    "the verification email that never arrives",
  ],
]

REPORTS = [  # billing
  [
    "I was charged {amount} twice on {date}.",
    "My invoice {invoice} shows {amount} but {plan} is cheaper.",
    "The refund for {order} still hasn't reached my card.",
    "You billed me for {plan} after I downgraded.",
    "There is a charge of {amount} on {date} that I never authorised.",
    "My direct debit failed and now there's a fee.",
    "My monthly bill went up by {amount} without any notice.",
    "I cancelled on {date} but was billed again.",
    "The discount code was not applied, I paid the full {amount}.",
    "I got two invoices for the same month.",
    "I was still charged for the {device} I sent back.",
  ],
  [  # technical
    "The {app} crashes every time I open it.",
    "I get error E-{code} when I log in to the {app}.",
    "My {device} keeps dropping the wifi connection.",
    "The {app} won't sync with my {device} anymore.",
    "Since the last update my {device} shows a black screen.",
    "My {plan} speeds are far below advertised.",
    "The {app} freezes on the loading screen.",
    "My {device} reboots itself every few minutes.",
    "I can't pair the {device} with the {app}, it just spins.",
    "The internet has been down since {date}.",
    "The {app} logs me out every few minutes.",
  ],
  [  # shipping
    "My parcel {order} was due on {date} and still hasn't arrived.",
    "Tracking for {order} hasn't updated in {days} days.",
    "I ordered the {device} but got a different model.",
    "The box for {order} arrived crushed and the {device} is cracked.",
    "{carrier} says delivered but there's nothing at my door.",
    "My order {order} has been stuck in {city} for {days} days.",
    "The {device} arrived without the power cable.",
    "I never got the return label for {order}.",
    "The courier missed my delivery slot twice.",
    "Half of order {order} is missing.",
    "The {device} I returned still shows as not received.",
  ],
  [  # account
    "The password reset link says it has expired.",
    "I can't change my email to {email}, it gives an error.",
    "My account got locked after I typed the wrong password.",
    "The 2FA codes never arrive on my phone.",
    "I want to close my account but can't find the option.",
    "My profile still shows my old address.",
    "The verification email never reaches {email}.",
    "I have two accounts and want them merged into one.",
    "I lost the phone I used for two-factor login.",
    "Someone else's name shows on my profile page.",
    "I can't sign in to the {app} since I changed my password.",
  ],
]

QUESTIONS = [  # billing
  [
    "How does proration work if I switch to {plan}?",
    "Where can I download invoice {invoice}?",
    "Can I pay by bank transfer instead of card?",
    "When will the refund for {order} show up?",
    "Is there a discount if I pay yearly for {plan}?",
    "What is the {amount} line on my bill for?",
    "Can you send me a VAT invoice for {month}?",
    "Which day of the month is the direct debit taken?",
  ],
  [  # technical
    "Does the {app} support dark mode?",
    "Is the {device} compatible with the {plan} plan?",
    "How do I factory reset my {device}?",
    "Which firmware version should the {device} be on?",
    "What does error E-{code} mean?",
    "Can the {app} run on an older tablet?",
    "Is there a way to move the {device} to the 5 GHz band?",
    "Is there a known issue with the {app} today?",
  ],
  [  # shipping
    "Can you tell me where parcel {order} is?",
    "Do you ship the {device} to {city}?",
    "How long does delivery usually take for {order}?",
    "Can I change the delivery address for {order}?",
    "Who is the courier for my {device}?",
    "Can I pick up order {order} from a depot instead?",
    "What is the return window for the {device}?",
    "Can the delivery for {order} be left with a neighbour?",
  ],
  [  # account
    "How do I change the email on my account to {email}?",
    "Can I add my partner to the {plan} account?",
    "How do I turn on two-factor authentication?",
    "What happens to my data if I close my account?",
    "Can I change my username?",
    "How do I update the billing address on my profile?",
    "Is it possible to have two logins on one account?",
    "Where do I find my account number?",
  ],
]

# --- Sentiment blocks. ------------------------------------------------------------------------------------------

NEG_OPENERS = [
  "This is ridiculous.",
  "I'm really frustrated.",
  "Honestly this is unacceptable.",
  "Third time writing about this.",
  "Not happy at all.",
  "I am beyond annoyed.",
  "Seriously?",
  "What a mess.",
  "I've had enough.",
  "Worst experience I've had with any company.",
]
NEG_FRAMES = [
  "I'm sick of dealing with {issue}.",
  "Still no answer about {issue}, this is a joke.",
  "Nobody has fixed {issue} and I'm fed up.",
  "Why is {issue} still a problem??",
  "You people keep messing up {issue}.",
  "I'm angry about {issue}.",
  "Disgusted by {issue}.",
]
NEG_CLOSERS = [
  "Terrible service.",
  "I'm seriously considering cancelling.",
  "Sort it out.",
  "Very disappointed.",
  "Nobody answered my last two emails.",
  "I want compensation.",
  "Absolutely useless support.",
  "I expect better for what I pay.",
  "Don't make me call again.",
]
NEU_OPENERS = [
  "Quick question.",
  "I'd like some information.",
  "Writing about my account.",
  "A small issue:",
  "Following up on my earlier message.",
  "FYI.",
]
NEU_FRAMES = [
  "I have a question about {issue}.",
  "Could you check {issue}?",
  "Just reporting {issue}.",
  "I'd like an update on {issue}.",
  "Can someone look into {issue}?",
  "Please advise on {issue}.",
]
NEU_CLOSERS = [
  "Thanks.",
  "Let me know if you need anything else from me.",
  "Regards.",
  "Thank you.",
  "Happy to provide more details.",
  "Please confirm.",
]
POS_OPENERS = [
  "Great news!",
  "You guys are awesome.",
  "Just a quick thank you.",
  "I'm so happy!",
  "Wanted to share some good feedback.",
  "Brilliant service today.",
]
POS_FRAMES = [
  "Thanks so much for fixing {issue}!",
  "Your team was amazing with {issue}.",
  "{issue} is sorted now, thank you!",
  "Really appreciate how fast you handled {issue}.",
  "Thank you for the help with {issue}, all good now.",
  "Love how easy it was to resolve {issue}.",
]
POS_CLOSERS = [
  "Really appreciate it!",
  "Keep up the great work.",
  "Happy customer here :)",
  "Five stars from me.",
  "You made my day.",
  "Thanks again, lovely people.",
]

# --- Urgency, short forms, politeness. ---------------------------------------------------------------------------

HIGH_CUES = [
  "Please fix this asap.",
  "I need this sorted today.",
  "This is urgent!!",
  "My business is down.",
  "I can't work like this.",
  "I have a deadline tomorrow morning.",
  "Need an answer within the hour.",
  "Please call me back right away.",
  "I'm travelling tomorrow and need it before then.",
  "Customers are waiting on me, please hurry.",
  "This needs fixing immediately.",
  "Urgent please!!!",
]
LOW_CUES = [
  "No rush.",
  "Whenever you get a chance.",
  "Just curious.",
  "Not urgent at all.",
  "Any time this week is fine.",
  "No hurry, just wanted to flag it.",
  "Low priority.",
  "Whenever is convenient.",
  "It can wait until next week.",
  "Take your time.",
]
SHORT = [  # topic phrases for very short messages
  [
    "refund for {order} still missing",
    "charged twice this month",
    "wrong amount on my bill",
    "question about invoice {invoice}",
    "why was I charged {amount}??",
    "the {plan} price went up",
  ],
  [
    "the {app} keeps crashing",
    "wifi down again at home",
    "my {device} won't connect",
    "getting error E-{code}",
    "login broken in the {app}",
    "{device} stuck on a black screen",
  ],
  [
    "where is my parcel {order}",
    "{order} still not delivered",
    "the box arrived damaged",
    "you sent the wrong item",
    "tracking stuck for {days} days",
    "my {device} delivery is late",
  ],
  [
    "password reset link not working",
    "locked out of my account",
    "2fa code never comes",
    "need to change my email",
    "please close my account",
    "can't update my profile",
  ],
]
SHORT_SENTIMENT = [
  ["ugh.", "so annoying.", "seriously??", "this is awful.", "sick of this.", "terrible."],
  ["", "", "hi,", "question:", "fyi", "hello -"],
  ["thanks!!", "love it, thanks", "all fixed, thank you :)"],
]
SHORT_URGENCY = [
  ["when you can", "no rush", "not urgent", "whenever"],
  ["asap!!", "urgent", "need it today", "now please"],
]
GREETINGS = [
  "Hi,",
  "Hello,",
  "Hey there,",
  "Good morning,",
  "Dear Brightwave support,",
  "Hi team,",
  "Hiya,",
  "To whom it may concern,",
  "Hello Brightwave,",
  "hey",
]
DETAILS = [
  "I'm on the {plan} plan.",
  "My order number is {order}.",
  "I've been a customer for {days} years.",
  "My account email is {email}.",
  "I spoke to {name} on {date}.",
  "I'm using the {app} on my phone.",
  "I live in {city}.",
  "My ticket reference is T-{code}{code}.",
]
PROBLEM_DETAILS = [
  "This started on {date}.",
  "I already restarted the {device}.",
  "I've tried twice already.",
  "I have screenshots if that helps.",
  "My neighbour had the same thing last month.",
  "The chat bot just sent me in circles.",
  "On {date} I was told it'd be fixed in {days} days.",
]
ASIDES = ["Also, unrelated:", "Separate question:", "While I have you,", "Oh and", "Also"]  # a second, minor topic
SIGN_OFFS = ["Best, {name}", "- {name}", "Regards, {name}", "Sent from my phone", "Cheers, {name}", "{name}"]
TYPOS = {
  "receive": "recieve",
  "definitely": "definately",
  "please": "pls",
  "you": "u",
  "account": "acount",
  "because": "becuase",
  "address": "adress",
  "password": "pasword",
  "tomorrow": "tomorow",
}


def chance(rng: random.Random, p: float) -> bool:
  return rng.random() < p


def short_message(rng: random.Random, sentiment: int, urgency: int, topic: int) -> str:
  parts = [
    rng.choice(SHORT_SENTIMENT[sentiment]),
    fill(rng.choice(SHORT[topic]), rng),
    rng.choice(SHORT_URGENCY[urgency]),
  ]
  if sentiment == 2:
    parts = parts[1:2] + parts[:1] + parts[2:]
  return " ".join(p for p in parts if p)


def core(rng: random.Random, sentiment: int, topic: int) -> list[str]:
  """The sentences that carry the topic and most of the sentiment."""
  issue = lambda: fill(rng.choice(ISSUES[topic]), rng)
  if sentiment == 0:
    body = [sentence(rng.choice(REPORTS[topic]), rng)]
    if chance(rng, 0.45):
      body.insert(0, rng.choice(NEG_FRAMES).format(issue=issue()))
    if chance(rng, 0.5):
      body.insert(0, rng.choice(NEG_OPENERS))
    return body
  if sentiment == 1:
    roll = rng.random()
    if roll < 0.4:
      body = [sentence(rng.choice(REPORTS[topic]), rng)]
    elif roll < 0.7:
      body = [rng.choice(NEU_FRAMES).format(issue=issue())]
    else:
      body = [fill(rng.choice(QUESTIONS[topic]), rng)]
    if chance(rng, 0.25):
      body.append(fill(rng.choice(QUESTIONS[topic]), rng))
    return ([rng.choice(NEU_OPENERS)] if chance(rng, 0.25) else []) + body
  body = [sentence(rng.choice(POS_FRAMES).format(issue=issue()), rng)]
  if chance(rng, 0.35):
    body.insert(0, rng.choice(POS_OPENERS))
  if chance(rng, 0.3):
    body.append("One more thing: " + fill(rng.choice(QUESTIONS[topic]), rng))
  return body


def closer(rng: random.Random, sentiment: int) -> list[str]:
  pools, probs = (NEG_CLOSERS, NEU_CLOSERS, POS_CLOSERS), (0.45, 0.35, 0.55)
  return [rng.choice(pools[sentiment])] if chance(rng, probs[sentiment]) else []


def long_message(rng: random.Random, sentiment: int, urgency: int, topic: int) -> str:
  parts = [rng.choice(GREETINGS)] if chance(rng, 0.6) else []
  if urgency == 1 and chance(rng, 0.12):
    parts.append("URGENT:")
  parts += core(rng, sentiment, topic)
  details = DETAILS + (PROBLEM_DETAILS if sentiment < 2 else [])
  parts += [fill(d, rng) for d in rng.sample(details, k=rng.choice([0, 0, 1, 1, 1, 2, 2, 3, 4]))]
  if chance(rng, 0.07):
    other = rng.choice([t for t in range(4) if t != topic])
    parts.append(rng.choice(ASIDES) + " " + fill(rng.choice(SHORT[other]), rng) + "?")
  if chance(rng, 0.82):  # the rest carry urgency only implicitly (or not at all)
    cue = rng.choice(HIGH_CUES if urgency else LOW_CUES)
    if urgency == 1 and sentiment == 0 and chance(rng, 0.25):
      cue = cue.rstrip(".!") + "!!!"
    parts.append(cue)
  parts += closer(rng, sentiment)
  if chance(rng, 0.45):
    parts.append(fill(rng.choice(SIGN_OFFS), rng))
  return " ".join(parts)


def add_noise(rng: random.Random, text: str) -> str:
  """Typos, lowercase and dropped punctuation, as in real typed messages."""
  if chance(rng, 0.15):
    for right, wrong in TYPOS.items():
      if chance(rng, 0.6):
        text = re.sub(rf"\b{right}\b", wrong, text)
  if chance(rng, 0.1):
    text = text.lower()
  if chance(rng, 0.1):
    text = text.rstrip(".")
  if chance(rng, 0.05):
    text = text.replace("'", "")
  return text


def draw(probs: tuple[float, ...], rng: random.Random) -> int:
  return rng.choices(range(len(probs)), weights=probs)[0]


def make_row(rng: random.Random) -> tuple[str, list[int]]:
  sentiment = draw(SENTIMENT_P, rng)
  urgency = int(chance(rng, HIGH_URGENCY_P[sentiment]))
  topic = draw(TOPIC_P, rng)
  make = short_message if chance(rng, 0.12) else long_message
  return add_noise(rng, make(rng, sentiment, urgency, topic)), [sentiment, urgency, topic]


def corrupt(rng: random.Random, row: dict) -> None:
  """Training-only imperfections: label noise, missing labels and per-row weights."""
  labels, num_classes = row["labels"], (3, 2, 4)
  if chance(rng, LABEL_NOISE_P):
    task = rng.randrange(3)
    labels[task] = rng.choice([c for c in range(num_classes[task]) if c != labels[task]])
  roll = rng.random()
  if roll < NULL_P + MINUS_ONE_P:
    labels[rng.randrange(3)] = None if roll < NULL_P else -1
  if chance(rng, WEIGHT_P):
    row["weight"] = (
      [rng.choice([0.5, 1.0, 1.5, 2.0]) for _ in range(3)]
      if chance(rng, 0.2)
      else rng.choice([0.25, 0.5, 0.5, 2.0, 2.0, 3.0])
    )


def make_split(rows: int, seed: int, seen: set[str], train: bool) -> list[dict]:
  rng = random.Random(seed)
  out = []
  while len(out) < rows:
    text, labels = make_row(rng)
    if text in seen:
      continue
    seen.add(text)
    row = {"text": text, "labels": labels}
    if train:
      corrupt(rng, row)
    out.append(row)
  return out


def main() -> None:
  OUT_DIR.mkdir(parents=True, exist_ok=True)
  seen: set[str] = set()
  for name, rows, seed in SPLITS:
    data = make_split(rows, seed, seen, train=name == "train")
    path = OUT_DIR / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")
    print(f"wrote {len(data)} rows to {path}")


if __name__ == "__main__":
  main()
