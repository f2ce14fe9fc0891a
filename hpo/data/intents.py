"""The ``intents`` data set's texts: a seeded generator of customer-support utterances.

Made here, offline and from a seed: 8 intents, each with 12 hand-written
phrasing templates. A template's slots are filled from shared word lists
(items, order references, times, politeness), then distractor words are added
(greetings, fillers, sign-offs and context that is the same for every intent)
and typos are made (swapped, dropped, doubled or mistyped letters). Each
template is one group; the templates overlap in vocabulary across intents
("order" is in five of them), so keywords alone do not give the answer away.

``python -m hpo.data OUT.jsonl [SEED]`` writes them as JSON lines (text, label, group).
"""

from __future__ import annotations

import json
import random
import re
import sys

TEMPLATES: dict[str, list[str]] = {
    "cancel_order": [
        "{please} cancel my {order} {ref}",
        "i don't want the {item} anymore, can you stop the {order}",
        "how do i cancel an {order} i placed {when}",
        "i changed my mind about the {item}, call off the {order}",
        "is it too late to cancel {ref}",
        "scrap my {order} {please}",
        "i ordered the wrong {item} {when} and need to cancel it",
        "stop {ref} from being sent, i want to cancel",
        "cancel the {item} i bought {when}",
        "can i still withdraw my {order}",
        "i need to void {ref} before it ships",
        "get rid of my pending {order}, i no longer need it",
    ],
    "track_order": [
        "where is my {order} {ref}",
        "has my {item} shipped yet",
        "can you tell me the status of {ref}",
        "my {order} from {when} still hasn't arrived, where is it",
        "track {ref} {please}",
        "when will my {item} be delivered",
        "i'd like a tracking number for my {order}",
        "what's the delivery date for the {item} i ordered {when}",
        "is {ref} out for delivery",
        "how far away is my {order}",
        "any update on the shipping of my {item}",
        "the courier page shows nothing for {ref}, where's my parcel",
    ],
    "request_refund": [
        "i want my money back for the {item}",
        "{please} refund {ref}",
        "how do i get a refund on an {order} from {when}",
        "the {item} arrived broken, i need a refund",
        "can i return the {item} and get reimbursed",
        "i was promised a refund for {ref} and never got it",
        "send the money for my {order} back to my card",
        "what's your refund policy for a {item}",
        "i sent back the {item} {when}, when will the refund come",
        "i'd like reimbursement for the damaged {order}",
        "give me a refund, the {item} doesn't work",
        "credit my account for {ref} {please}",
    ],
    "change_address": [
        "i need to change the delivery address for {ref}",
        "{please} ship my {order} to a different address",
        "i moved {when}, update my shipping address",
        "can you send the {item} to my office instead of home",
        "wrong address on my {order}, how do i fix it",
        "update the postcode on {ref}",
        "deliver {ref} to my new apartment {please}",
        "i typed the street name wrong when i ordered the {item}",
        "change where my {order} is going",
        "can i redirect my {item} to another city",
        "my address has changed, will my {order} still reach me",
        "edit the shipping details of my {order}",
    ],
    "reset_password": [
        "i forgot my password",
        "{please} reset my password",
        "i can't log into my account since {when}",
        "the login page says my password is wrong",
        "how do i change my password",
        "i'm locked out of my account",
        "send me a password reset link {please}",
        "my account won't let me sign in",
        "i never got the reset email for my login",
        "help me recover access to my account",
        "i need a new password, the old one doesn't work",
        "my login stopped working {when}",
    ],
    "payment_issue": [
        "my card was declined when i tried to buy the {item}",
        "i was charged twice for {ref}",
        "the payment for my {order} didn't go through",
        "why was my card charged {when}",
        "checkout keeps failing at the payment step",
        "there's a charge on my statement i don't recognize",
        "{please} fix the billing error on my {order}",
        "can i pay for the {item} with paypal instead",
        "my bank says the payment for {ref} is pending",
        "i got billed the wrong amount for the {item}",
        "the payment page gives an error since {when}",
        "why do i see two charges for one {order}",
    ],
    "product_availability": [
        "is the {item} in stock",
        "when will the {item} be available again",
        "do you have the {item} in a larger size",
        "the {item} shows sold out, will you restock it",
        "can i preorder the {item}",
        "is the {item} available in blue",
        "do you still sell the {item} i bought {when}",
        "{please} let me know when the {item} is back",
        "how many of the {item} do you have left",
        "can i get the {item} delivered to my country",
        "will the {item} come back in stock {soon}",
        "are there any {item} left in the warehouse",
    ],
    "talk_to_agent": [
        "i want to talk to a real person",
        "{please} connect me to an agent",
        "can i speak with a human",
        "get me a customer service representative",
        "is there a phone number i can call",
        "this bot isn't helping, transfer me to support",
        "i'd like to chat with someone from your team",
        "let me talk to a manager {please}",
        "how do i reach a live agent",
        "i need a human to look at my {order}",
        "can someone call me back {soon}",
        "put me through to a person",
    ],
}
ITEMS = [
    "headphones", "blender", "running shoes", "phone case", "coffee maker", "backpack",
    "desk lamp", "jacket", "keyboard", "yoga mat", "water bottle", "monitor",
]  # fmt: skip
SLOTS: dict[str, list[str]] = {
    "order": ["order", "purchase", "package", "shipment", "parcel"],
    "item": ITEMS,
    "ref": ["order {n}", "#{n}", "order number {n}", "ref {n}", "my order {n}", "{n}"],
    "when": ["yesterday", "last week", "last friday", "two days ago", "this morning", "last month"],
    "soon": ["today", "this week", "tomorrow", "soon", "before the weekend"],
    "please": ["please", "pls", "could you", "kindly", ""],
}
OPENERS = [
    "", "", "", "hi", "hello", "hey there", "good morning", "um", "ok so", "quick question",
    "sorry to bother you but", "hi team", "hello?",
]  # fmt: skip
CLOSERS = [
    "", "", "", "thanks", "thank you", "asap", "thx", "it's urgent", "cheers", "!!",
    "i'm really frustrated", "my name is alex", "i'm a loyal customer", "it was a gift for my mom",
    "this is my second message", "i'm on my phone",
]  # fmt: skip
FILLERS = ["by the way", "honestly", "like", "you know", "basically", "actually"]
KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"
SLOT = re.compile(r"\{(\w+)\}")


def generate_intents(
    seed: int = 0, per_intent: int = 200, typo_rate: float = 0.04, filler_rate: float = 0.15
) -> tuple[list[str], list[str], list[str]]:
    """(texts, intents, groups): ``per_intent`` utterances per intent, spread over its templates.

    The group of an utterance is ``intent/template-number``; with a group
    split, validation utterances come from templates that training never saw.
    """
    rng = random.Random(seed)
    texts, labels, groups = [], [], []
    for intent, templates in TEMPLATES.items():
        for i in range(per_intent):
            index = i % len(templates)
            texts.append(_utterance(templates[index], rng, typo_rate, filler_rate))
            labels.append(intent)
            groups.append(f"{intent}/{index:02d}")
    return texts, labels, groups


def _utterance(template: str, rng: random.Random, typo_rate: float, filler_rate: float) -> str:
    text = SLOT.sub(lambda m: _slot(m.group(1), rng), template)
    words = text.split()
    if words and rng.random() < filler_rate:
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
    words = [_typo(w, rng) if len(w) > 3 and rng.random() < typo_rate else w for w in words]
    parts = [rng.choice(OPENERS), " ".join(words), rng.choice(CLOSERS)]
    text = " ".join(p for p in parts if p)
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


def _slot(name: str, rng: random.Random) -> str:
    value = rng.choice(SLOTS[name])
    return value.replace("{n}", str(rng.randrange(10_000, 999_999)))


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard slip: swap two letters, drop one, double one, or hit a neighbouring key."""
    i = rng.randrange(len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    k = KEYBOARD.find(word[i])
    near = KEYBOARD[(k + rng.choice((-1, 1))) % len(KEYBOARD)] if k >= 0 else word[i]
    return word[:i] + near + word[i + 1 :]


def main(argv: list[str]) -> None:
    """``python -m hpo.data OUT.jsonl [SEED]``: write the generated intents as JSON lines."""
    if not argv:
        sys.exit("usage: python -m hpo.data OUT.jsonl [SEED]")
    texts, labels, groups = generate_intents(int(argv[1]) if len(argv) > 1 else 0)
    with open(argv[0], "w", encoding="utf-8") as out:
        for text, label, group in zip(texts, labels, groups, strict=True):
            out.write(json.dumps({"text": text, "label": label, "group": group}) + "\n")
