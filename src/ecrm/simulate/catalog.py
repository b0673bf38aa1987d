"""The product catalog: ~120 products in 8 categories with EUR prices and skewed popularity."""

from __future__ import annotations

from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from random import Random

from .common import Stream, py_rng

# category -> (price range in cents, product nouns)
CATEGORIES: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "Coffee": ((690, 3490), ("Espresso Beans", "Filter Roast", "Decaf Blend", "Cold Brew Pack", "Single Origin",
                             "Moka Pot", "Pour-Over Kit", "Milk Frother", "Coffee Grinder", "Barista Cup",
                             "Dripper", "Coffee Scale", "Chemex Filters", "Latte Mug", "Tamper")),
    "Tea": ((450, 2990), ("Sencha", "Earl Grey", "Chai Mix", "Rooibos", "Oolong", "Matcha Tin", "Tea Infuser",
                          "Teapot", "Herbal Blend", "Jasmine Pearls", "Tea Cups Set", "Darjeeling", "Mint Tea")),
    "Kitchen": ((990, 8990), ("Chef Knife", "Cutting Board", "Cast Iron Pan", "Mixing Bowls", "Spice Rack",
                              "Salad Spinner", "Dutch Oven", "Measuring Cups", "Olive Oil Can", "Apron",
                              "Pepper Mill", "Baking Tray", "Bread Knife", "Storage Jars", "Whisk")),
    "Home Decor": ((1290, 12900), ("Linen Cushion", "Ceramic Vase", "Wool Throw", "Wall Clock", "Candle Set",
                                   "Table Lamp", "Photo Frame", "Plant Pot", "Door Mat", "Mirror",
                                   "Storage Basket", "Rug", "Bookends", "Diffuser")),
    "Books": ((990, 4490), ("Coffee Atlas", "Tea Handbook", "Slow Cooking", "Home Barista", "Plant Parent",
                            "Bread Basics", "Nordic Living", "Ferment It", "Cocktail Hour", "Garden Journal",
                            "Pasta Stories", "Travel Cookbook")),
    "Outdoor": ((1490, 14900), ("Thermos Flask", "Picnic Blanket", "Camping Mug", "Hammock", "Cool Bag",
                                "Trail Bottle", "Garden Gloves", "Folding Chair", "Lantern", "Bird Feeder",
                                "Seed Set", "Watering Can", "Grill Tools")),
    "Beauty": ((590, 5490), ("Hand Cream", "Lip Balm", "Face Oil", "Soap Bar", "Bath Salts", "Body Lotion",
                             "Shampoo Bar", "Candle Balm", "Shaving Kit", "Nail Care Set", "Perfume Oil",
                             "Face Mask", "Hair Brush")),
    "Toys": ((790, 6990), ("Wooden Blocks", "Puzzle 500", "Board Game", "Plush Bear", "Kite", "Train Set",
                           "Memory Game", "Marble Run", "Card Game", "Craft Kit", "Yo-yo", "Spinning Top")),
}
ADJECTIVES = ("Classic", "Organic", "Nordic", "Premium", "Everyday", "Vintage", "Eco", "Signature")


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    price_cents: int


class Catalog:
    """Fixed for a seed; popularity follows a Zipf-like law so a few products sell most."""

    def __init__(self, seed: int) -> None:
        rng = py_rng(seed, None, Stream.CATALOG)
        products: list[Product] = []
        for category, ((low, high), nouns) in CATEGORIES.items():
            for noun in nouns:
                number = len(products) + 1
                price = rng.randint(low, high) // 10 * 10 + 9  # shop prices end in 9
                products.append(Product(f"p-{number:03d}", f"{rng.choice(ADJECTIVES)} {noun}", category, price))
        order = list(range(len(products)))
        rng.shuffle(order)
        weights = [0.0] * len(products)
        for rank, index in enumerate(order, start=1):
            weights[index] = 1.0 / rank**0.9
        self.products = tuple(products)
        self._cdf = tuple(accumulate(w / sum(weights) for w in weights))

    def pick(self, rng: Random) -> Product:
        """One product by popularity."""
        return self.products[min(bisect(self._cdf, rng.random()), len(self.products) - 1)]

    def pick_distinct(self, rng: Random, n: int) -> list[Product]:
        chosen: dict[str, Product] = {}
        while len(chosen) < n:
            p = self.pick(rng)
            chosen.setdefault(p.product_id, p)
        return list(chosen.values())
