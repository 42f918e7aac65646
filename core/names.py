"""Names people can say: every village gets a stable two-word name derived from its peer id
("Mossy Heron"), and a gardener may give their own village a name that travels in its signed
record. Pure.

A derived name is a label, not an identity: 128 x 128 words make 16,384 names, so two villages
of a large network can share one; the peer id (shown on hover, copied with one click) is what
identifies. A chosen name is whatever its gardener typed: it is sanitised and bounded here, and
another village's chosen name is always shown beside its derived name, so nobody can pass as
"Mossy Heron" by calling their village that.
"""

from __future__ import annotations

import hashlib
import unicodedata

ADJECTIVES = (
    "Amber", "Ashen", "Azure", "Autumn", "Bold", "Brave", "Breezy", "Bright", "Brisk", "Bronze",
    "Calm",
    "Cedar", "Cheerful", "Clever", "Cloudy", "Clover", "Coastal", "Cool", "Copper", "Cosy",
    "Crimson", "Crisp", "Curious", "Dappled", "Dawn", "Dewy", "Drifting", "Dusky", "Eager",
    "Early", "Earthy", "Evening", "Fair", "Fern", "Fleet", "Foggy", "Frosty", "Gentle",
    "Gilded", "Glad", "Gleaming", "Golden", "Grassy", "Green", "Hardy", "Hazel", "Heather",
    "Hidden",
    "Hilly", "Honest", "Humble", "Icy", "Ivory", "Jade", "Jolly", "Keen", "Kind", "Lively",
    "Lofty", "Lucky", "Lunar", "Maple", "Meadow", "Mellow", "Merry", "Misty", "Morning",
    "Mossy", "Nimble", "Noble", "Northern", "Oaken", "Olive", "Patient", "Pebbly", "Plucky",
    "Polar", "Proud", "Quiet", "Rainy", "Rapid", "Rosy", "Rowan", "Rustic", "Rusty", "Sandy",
    "Scarlet", "Serene", "Shady", "Sharp", "Shy", "Silent", "Silver", "Sleepy", "Snowy",
    "Sober", "Solar", "Spring", "Starry", "Steady", "Stony", "Stormy", "Sturdy", "Summer",
    "Sunny", "Swift", "Tall", "Tawny", "Thistle", "Tidy", "Timber", "Tranquil", "Trusty",
    "Twilight", "Velvet", "Verdant", "Vivid", "Warm", "Wandering", "Wild", "Willow", "Windy",
    "Winter", "Wise", "Witty", "Woolly", "Young", "Zesty",
)
NOUNS = (
    "Acorn", "Alder", "Aspen", "Badger", "Beacon", "Beaver", "Beech", "Birch", "Bison",
    "Bramble", "Brook", "Burrow", "Canyon", "Cedar", "Comet", "Coral", "Crane", "Creek",
    "Crow", "Cypress", "Daisy", "Deer", "Dove", "Dune", "Eagle", "Elm", "Ember", "Falcon",
    "Fawn", "Fern", "Finch", "Fir", "Fjord", "Fox", "Garden", "Glade", "Glen", "Grove",
    "Hare", "Harbour", "Hawk", "Hazel", "Heron", "Hedge", "Hill", "Hollow", "Ibis", "Iris",
    "Island", "Ivy", "Jay", "Juniper", "Kestrel", "Kite", "Lake", "Lark", "Laurel", "Lily",
    "Linden", "Lynx", "Maple", "Marsh", "Meadow", "Mink", "Moor", "Moth", "Newt", "Oak",
    "Orchard", "Osprey", "Otter", "Owl", "Panda", "Pebble", "Pine", "Plover", "Pond",
    "Poppy", "Quail", "Rabbit", "Raven", "Reed", "Ridge", "River", "Robin", "Rook", "Rose",
    "Rowan", "Sage", "Salmon", "Sparrow", "Spruce", "Squirrel", "Starling", "Stoat", "Stone",
    "Stork", "Swallow", "Swan", "Sycamore", "Teal", "Thrush", "Tulip", "Valley", "Vole",
    "Walnut", "Warbler", "Willow", "Wolf", "Wren", "Yarrow", "Yew", "Badlands", "Bay",
    "Bluebell", "Cliff", "Cove", "Delta", "Field", "Forest", "Heath", "Mesa", "Oasis",
    "Prairie", "Spring", "Summit", "Thicket", "Tundra",
)
MAX_CHOSEN = 32  # characters of a name a gardener chose
# The two lists are fixed: a word changed or moved renames villages (every village derives
# every name itself, so villages on different versions would disagree).


def village_name(peer_id: str) -> str:
    """The stable two-word name of a village ("Mossy Heron"); "" for no id."""
    if not peer_id:
        return ""
    h = hashlib.sha256(peer_id.encode()).digest()
    return f"{ADJECTIVES[h[0] % len(ADJECTIVES)]} {NOUNS[h[1] % len(NOUNS)]}"


def sanitise(text: str) -> str:
    """A chosen name as it may be shown and sent: letters, digits, spaces and a little
    punctuation, no control or direction-changing characters, whitespace collapsed, at most
    MAX_CHOSEN characters."""
    keep = []
    for ch in unicodedata.normalize("NFC", text):
        if ch.isspace():
            keep.append(" ")
        elif unicodedata.category(ch)[0] in "LN" or ch in "-'._&":
            keep.append(ch)
    return " ".join("".join(keep).split())[:MAX_CHOSEN].strip()


def display_name(peer_id: str, chosen: str = "", *, own: bool = False) -> str:
    """How a village is named to the gardener: its derived name, or the name its gardener
    chose beside it ("Anna's desk (Mossy Heron)"); this village's own chosen name alone."""
    derived = village_name(peer_id)
    chosen = sanitise(chosen)
    if not chosen or chosen == derived:
        return derived
    return chosen if own else f"{chosen} ({derived})"


def speaker(persona_name: str, persona_id: str, village: str = "") -> str:
    """How a persona in a conversation is named: "Ada at Mossy Heron" (`village` as
    display_name gives it; empty: this village), "persona 494127 at ..." where its name is
    not known."""
    return f"{persona_name or 'persona ' + persona_id[:6]} at {village or 'this village'}"
