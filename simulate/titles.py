"""Item titles written from the attributes, with varied wording.

Each title picks one of several templates, a synonym for the leaf, the top category, the colour and
the style, and its own word order, so that two items of the same leaf rarely share a title while a
text model still sees what they are: the leaf word (toothbrush) and the top-category word (oral
care) carry the category tree, complementary leaves share the top-category word or a related
product word, and colour, material, style and brand add shared but weaker words.
"""
from __future__ import annotations

from .catalogue import Catalogue
from .config import WorldConfig
from .sampling import stream
from .words import COLOURS, MATERIALS, STYLES

SEED_TITLES = 3  # component key of the titles' random stream

TEMPLATES: tuple[str, ...] = (
    "{brand} {leaf} - {colour}, {material}, {size}",
    "{style} {colour} {leaf} by {brand} | {top}",
    "{brand} {top} {leaf}, {colour} {material} ({size})",
    "{colour} {material} {leaf} for everyday {top} | {brand}",
    "{leaf} ({colour}, {size}) - {style} {top} from {brand}",
    "{brand} {style} {material} {leaf} in {colour}",
    "New {brand} {leaf}: {colour}, {style}, {top}",
    "{size} {colour} {leaf}, {material} - {brand} {top}",
)


def write_titles(cfg: WorldConfig, cat: Catalogue) -> list[str]:
    """One title per catalogue row."""
    rng = stream(cfg.seed, SEED_TITLES)
    n = cat.n_items
    template = rng.integers(0, len(TEMPLATES), n)
    picks = rng.integers(0, 3, (n, 4))  # synonym choice for leaf, top, colour, style
    sizes = cat.size_names()
    tree = cat.tree
    titles = []
    for i in range(n):
        leaf, top = int(cat.leaf[i]), int(cat.top[i])
        p = picks[i]
        titles.append(TEMPLATES[template[i]].format(
            brand=cat.brand_names[cat.brand[i]],
            leaf=tree.leaf_synonyms[leaf][p[0]],
            top=tree.top_words[top][p[1] % len(tree.top_words[top])],
            colour=COLOURS[cat.colour[i]][2][p[2]],
            style=STYLES[cat.style[i]][1][p[3]],
            material=MATERIALS[cat.material[i]][0],
            size=sizes[i],
        ))
    return titles
