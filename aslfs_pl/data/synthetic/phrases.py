"""Phrases like Kaggle's: phone numbers, street addresses, URLs / e-mails and names (train), short
sentences (supplemental); 1..31 vocabulary characters, mean ~18."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aslfs_pl.vocab import CHAR_TO_INDEX

#: Longest phrase (Kaggle's maximum).
MAX_PHRASE_LEN: int = 31


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "maria james john mary robert linda michael sarah david karen william nancy carlos ana "
    "jose lucia wei mei hiroshi yuki ahmed fatima olga ivan pierre claire hans greta raj priya "
    "kwame amara liam emma noah olivia ethan ava lucas mia diego sofia chen lee kim jin omar "
    "leila sean aoife jack grace tom zoe max ella ben lily sam ruby"
)
_LAST = _words(
    "gonzalez smith johnson williams brown jones garcia miller davis rodriguez martinez "
    "hernandez lopez wilson anderson thomas taylor moore jackson martin thompson white harris "
    "clark lewis robinson walker young allen king wright scott torres nguyen hill flores green "
    "adams nelson baker hall rivera campbell mitchell carter roberts patel kumar singh wang "
    "zhang tanaka sato muller schmidt rossi dubois kowalski novak ivanova cohen murphy kelly"
)
_STREET = _words(
    "olive main oak pine maple cedar elm park lake hill sunset river spring highland valley "
    "church washington lincoln jefferson madison franklin jackson willow cherry walnut birch "
    "meadow forest ridge canyon harbor bay ocean mesa desert prairie summit orchard mill "
    "creekhouse kuhaylah juniper magnolia sycamore aspen laurel hawthorne chestnut poplar"
)
_SUFFIX = _words(
    "street st avenue ave road rd lane ln drive dr court ct boulevard blvd way place pl "
    "terrace circle trail parkway pkwy highway hwy"
)
_DIRS = _words("north south east west n s e w ne nw se sw")
_WORDS = _words(
    "sunny days blue sky green tech cloud data shop store news blog home world city best "
    "free fast smart web net pixel code apps games music photo travel food health sport "
    "book art design studio media market maps mail live open star moon sun fire water "
    "stone wood bright happy little big red gold silver north coast"
)
_TLDS = _words("com org net edu io co gov info us biz me tv uk ca de")
_PATHS = _words("blog about contact home index login search shop news help faq docs img user")
_SENTENCE = _words(
    "the a an of to in is it you that he was for on are as with his they i at be this have "
    "from or one had by word but not what all were we when your can said there use each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may "
    "part quick brown fox jumps over lazy dog coming sound bites killer"
)


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def _pick(rng: np.random.Generator, words: tuple[str, ...] | str) -> str:
    return words[int(rng.integers(len(words)))]


def _phone(rng: np.random.Generator) -> str:
    a = str(rng.integers(2, 10)) + _digits(rng, 2)
    b = str(rng.integers(2, 10)) + _digits(rng, 2)
    c = _digits(rng, 4)
    k = int(rng.integers(12))
    if k == 0:
        return f"{a}-{b}-{c}"
    if k == 1:
        return f"{a} {b} {c}"
    if k == 2:
        return f"({a}) {b}-{c}"
    if k == 3:
        return f"{a}.{b}.{c}"
    if k == 4:
        return f"+1-{a}-{b}-{c}"
    if k == 5:
        return f"+{rng.integers(2, 99)} {_digits(rng, 2)} {_digits(rng, 4)} {_digits(rng, 4)}"
    if k == 6:
        return f"+{rng.integers(2, 99)}-{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 2)}"
    if k == 7:
        return f"1-800-{_pick(rng, _WORDS)}"
    if k == 8:
        return f"{a}-{b}-{c} ext. {_digits(rng, int(rng.integers(2, 5)))}"
    if k == 9:
        return f"*{rng.integers(60, 80)} {a} {b} {c}"
    if k == 10:
        return f"{a}{b}{c}"
    return f"{a}-{b}-{c};ext={_digits(rng, 3)}#"


def _address(rng: np.random.Generator) -> str:
    num = str(rng.integers(1, 10 ** int(rng.integers(1, 6))))
    street, suffix = _pick(rng, _STREET), _pick(rng, _SUFFIX)
    k = int(rng.integers(11))
    if k <= 2:
        return f"{num} {_pick(rng, _DIRS)} {street} {suffix}"
    if k <= 4:
        return f"{num} {street} {suffix}"
    if k == 5:
        return f"{num} {street} {suffix}, apt {rng.integers(1, 40)}"
    if k == 6:
        return f"{num} {street} {suffix} #{rng.integers(1, 999)}"
    if k == 7:
        return f"po box {_digits(rng, int(rng.integers(2, 5)))}, {_pick(rng, _STREET)}"
    if k == 8:
        return f"{street} & {_pick(rng, _STREET)} {suffix}"
    if k == 9:
        return f"{num} {street} {suffix}, {_pick(rng, _STREET)}ville"
    return f"{num} {street}"


def _url(rng: np.random.Generator) -> str:
    w1, w2, tld = _pick(rng, _WORDS), _pick(rng, _WORDS), _pick(rng, _TLDS)
    k = int(rng.integers(14))
    if k <= 1:
        return f"www.{w1}-{w2}.{tld}/{_pick(rng, _PATHS)}"
    if k == 2:
        return f"https://{w1}.{tld}"
    if k == 3:
        return f"http://{w1}{w2}.{tld}/~{_pick(rng, _FIRST)}"
    if k <= 5:
        return f"{_pick(rng, _FIRST)}{_digits(rng, int(rng.integers(0, 3)))}@{w1}.{tld}"
    if k == 6:
        return f"{w1}.{tld}/{_pick(rng, _PATHS)}?id={_digits(rng, 3)}"
    if k == 7:
        return f"{w1}.{tld}/search?q={w2}&p={rng.integers(1, 9)}"
    if k == 8:
        return f"ftp://{w1}.{tld}/{w2}_{_pick(rng, _PATHS)}"
    if k == 9:
        return f"{w1}{w2}.{tld}"
    if k == 10:
        return f"www.{w1}.{tld}/{w2}%20{_pick(rng, _PATHS)}"
    if k == 11:
        return f"{w1}.{tld}/{w2}!/$5/*"
    if k == 12:
        return f"{w1}.{tld}:{rng.integers(80, 90)}/({w2})[{rng.integers(0, 9)}"
    return f"www.{w1}.{tld}/{w2}/'{_pick(rng, _PATHS)}'"


def _name(rng: np.random.Generator) -> str:
    first, last = _pick(rng, _FIRST), _pick(rng, _LAST)
    k = int(rng.integers(10))
    if k <= 2:
        return f"{first} {last}"
    if k == 3:
        return f"{first} {_pick(rng, _FIRST)} {last}"
    if k == 9:
        return first if rng.random() < 0.5 else last
    if k == 4:
        return f"{first} {_pick(rng, 'abcdefghijklmnopqrstuvwxyz')}. {last}"
    if k == 5:
        return f"{last}, {first}"
    if k == 6:
        return f"dr. {first} {last}"
    if k == 7:
        return f"{first} o'{last}"
    return f"{first}-{_pick(rng, _FIRST)} {last}"


def _sentence(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 7))
    return " ".join(_pick(rng, _SENTENCE) for _ in range(n))


_KINDS: tuple[Callable[[np.random.Generator], str], ...] = (_phone, _address, _url, _name)
_KIND_P = np.array([0.22, 0.33, 0.33, 0.12])


def random_phrase(rng: np.random.Generator, supplemental: bool = False) -> str:
    """A random phrase: phone number, street address, URL / e-mail or name (or a sentence).

    Args:
        rng: random generator.
        supplemental: draw the sentence-like phrases of the supplemental set instead.

    Returns:
        A lowercase phrase of 1..31 vocabulary characters.
    """
    for _ in range(100):
        if supplemental:
            phrase = _sentence(rng)
        else:
            phrase = _KINDS[int(rng.choice(len(_KINDS), p=_KIND_P))](rng)
        if 1 <= len(phrase) <= MAX_PHRASE_LEN:
            break
    else:  # pragma: no cover - the generators above fit within a few draws
        phrase = phrase[:MAX_PHRASE_LEN].strip() or "a"
    assert all(c in CHAR_TO_INDEX for c in phrase), phrase
    return phrase
