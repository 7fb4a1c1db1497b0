"""The world's vocabulary: shapes, colours, sizes, synonyms, relations and the held-out
(compositional) colour-shape combinations.  Pure data, no imports."""

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon")
#: RGB of each colour name
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 85, 230),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 200),
    "orange": (250, 140, 20),
    "cyan": (40, 210, 220),
    "white": (245, 245, 245),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "large")

#: words a caption may use for an attribute value (the first is canonical)
SHAPE_WORDS = {
    "circle": ("circle", "ball", "disc"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond", "rhombus"),
    "cross": ("cross", "plus sign"),
    "hexagon": ("hexagon",),
}
SHAPE_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
                 "diamond": "diamonds", "cross": "crosses", "hexagon": "hexagons"}
COLOUR_WORDS = {c: (c,) for c in COLOURS} | {"purple": ("purple", "violet"), "cyan": ("cyan", "turquoise")}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}

#: relation -> phrases (the relation holds between the first and the second object)
RELATIONS = {
    "left": ("left of", "to the left of", "on the left of"),
    "right": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}

#: colour-shape combinations never shown outside the compositional split (test_comp)
HELD_OUT = frozenset({
    ("red", "triangle"), ("blue", "circle"), ("green", "star"), ("yellow", "square"),
    ("purple", "diamond"), ("orange", "cross"), ("cyan", "hexagon"), ("white", "circle"),
})

#: grounding testA / testB split by the referent's shape group (as RefCOCO+ splits people
#: vs other objects): testA referents are round-ish / simple shapes, testB angular ones
GROUP_A = frozenset({"circle", "square", "triangle"})
GROUP_B = frozenset({"star", "diamond", "cross", "hexagon"})

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
