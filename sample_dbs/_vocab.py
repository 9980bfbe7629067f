"""Word lists the sample databases are drawn from.

Plain data. Order matters: ``build.py`` draws from these lists with a seeded
``random.Random``, so reordering or editing an entry changes every built file.
"""

# Hand-laid-out tables read better than one item per line.
# fmt: off


def _words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _words("""
James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara
Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy Anthony
Sandra Mark Emily Paul Ashley Steven Laura Andrew Rachel Kevin Amanda Brian Helen Lucas
Emma Hugo Chloe Louis Camille Felix Hannah Jonas Lea Matteo Giulia Lorenzo Sofia Pablo
Lucia Diego Carmen Sven Ingrid Lars Astrid Pieter Sanne Arjun Priya Rahul Ananya Wei Mei
Hiroshi Yuki Kenji Aiko Omar Layla Tariq Amira Liam Olivia Noah Ava Ethan Mia Oscar Isla
Jack Grace Leo Freya Mateo Valentina Tomasz Zofia Mateus Beatriz Aidan Siobhan
""")

LAST_NAMES = _words("""
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark Lewis
Walker Hall Allen Young King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell
Roberts Carter Phillips Evans Turner Parker Collins Edwards Stewart Morris Murphy Cook
Rogers Morgan Cooper Peterson Reed Bailey Bell Kelly Howard Ward Cox Richardson Wood
Watson Brooks Bennett Gray Hughes Price Sanders Dubois Moreau Laurent Lefebvre Bernard
Muller Schmidt Schneider Fischer Weber Wagner Rossi Russo Ferrari Esposito Bianchi
Fernandez Gonzalez Sanchez Romero Jansen Bakker Visser Larsen Nielsen Andersson Johansson
Nowak Kowalski Silva Santos Patel Sharma Singh Chen Wang Tanaka Sato Suzuki Kim Park
Nguyen Haddad O'Brien Murray Byrne Walsh
""")

# (city, country) - a customer base spread over a dozen countries.
CITIES = [
    ("New York", "United States"), ("Chicago", "United States"), ("Austin", "United States"),
    ("Seattle", "United States"), ("Boston", "United States"), ("Denver", "United States"),
    ("San Diego", "United States"), ("Atlanta", "United States"), ("Toronto", "Canada"),
    ("Vancouver", "Canada"), ("Montreal", "Canada"), ("London", "United Kingdom"),
    ("Manchester", "United Kingdom"), ("Edinburgh", "United Kingdom"), ("Bristol", "United Kingdom"),
    ("Paris", "France"), ("Lyon", "France"), ("Marseille", "France"), ("Berlin", "Germany"),
    ("Munich", "Germany"), ("Hamburg", "Germany"), ("Cologne", "Germany"), ("Madrid", "Spain"),
    ("Barcelona", "Spain"), ("Valencia", "Spain"), ("Rome", "Italy"), ("Milan", "Italy"),
    ("Turin", "Italy"), ("Amsterdam", "Netherlands"), ("Rotterdam", "Netherlands"),
    ("Stockholm", "Sweden"), ("Gothenburg", "Sweden"), ("Dublin", "Ireland"), ("Cork", "Ireland"),
    ("Sydney", "Australia"), ("Melbourne", "Australia"), ("Brisbane", "Australia"),
    ("Tokyo", "Japan"), ("Osaka", "Japan"), ("Warsaw", "Poland"), ("Krakow", "Poland"),
    ("Lisbon", "Portugal"), ("Porto", "Portugal"),
]

# ----------------------------------------------------------------------------- shop

# category -> (description, {product noun: typical price})
SHOP_CATEGORIES = {
    "Electronics": ("Gadgets, audio and computer accessories", {
        "Wireless Earbuds": 89, "Bluetooth Speaker": 59, "USB-C Charger": 25, "Smartwatch": 249,
        "27-inch Monitor": 299, "Mechanical Keyboard": 109, "Gaming Mouse": 49,
        "Portable SSD": 119, "Noise-Cancelling Headphones": 279, "HD Webcam": 69,
        "10-inch Tablet": 329, "E-Reader": 139, "Power Bank": 35}),
    "Books": ("Fiction, non-fiction and textbooks", {
        "Mystery Novel": 15, "Cookbook": 28, "Travel Guide": 22, "Science Fiction Novel": 16,
        "Biography": 24, "History of Europe": 32, "Python Programming Guide": 45,
        "Children's Picture Book": 12, "Poetry Collection": 14, "Graphic Novel": 19,
        "Self-Help Guide": 17, "Photography Book": 39}),
    "Home & Kitchen": ("Cookware, small appliances and home goods", {
        "Chef's Knife": 79, "Nonstick Frying Pan": 39, "Espresso Machine": 399, "Blender": 89,
        "Toaster": 45, "Cast Iron Skillet": 35, "Electric Kettle": 49, "Cutting Board": 25,
        "Air Fryer": 129, "Dinner Plate Set": 59, "Cotton Bath Towels": 34,
        "Scented Candle": 18}),
    "Sports & Outdoors": ("Fitness, camping and cycling gear", {
        "Yoga Mat": 29, "Camping Tent": 189, "Trail Running Shoes": 129, "Water Bottle": 22,
        "Resistance Bands": 19, "Hiking Backpack": 99, "Cycling Helmet": 69,
        "Sleeping Bag": 89, "Adjustable Dumbbells": 249, "Tennis Racket": 119,
        "Foam Roller": 25, "Headlamp": 29}),
    "Toys & Games": ("Board games, puzzles and toys", {
        "Board Game": 39, "1000-Piece Puzzle": 19, "Building Blocks Set": 59,
        "Remote Control Car": 49, "Plush Bear": 15, "Card Game": 12, "Wooden Train Set": 69,
        "Science Kit": 34, "Art Supplies Kit": 27, "Dollhouse": 119, "Kite": 16,
        "Chess Set": 45}),
    "Clothing": ("Apparel for women, men and kids", {
        "Rain Jacket": 89, "Wool Sweater": 75, "Denim Jeans": 65, "Cotton T-Shirt": 19,
        "Running Shorts": 29, "Winter Coat": 179, "Linen Shirt": 49, "Knit Beanie": 19,
        "Leather Belt": 39, "Hoodie": 55, "Socks 5-Pack": 15, "Sneakers": 95}),
    "Beauty": ("Skincare, haircare and fragrance", {
        "Moisturizing Cream": 24, "Shampoo": 12, "Conditioner": 12, "Sunscreen SPF 50": 18,
        "Lip Balm": 6, "Eau de Parfum": 89, "Face Serum": 35, "Hair Dryer": 79,
        "Makeup Brush Set": 29, "Hand Cream": 9, "Body Wash": 10}),
    "Garden": ("Tools, planters and outdoor furniture", {
        "Garden Hose": 39, "Pruning Shears": 24, "Ceramic Planter": 29, "Patio Chair": 119,
        "Bird Feeder": 25, "Lawn Sprinkler": 22, "Seed Starter Kit": 19,
        "Solar Path Lights": 35, "Compost Bin": 69, "Garden Gloves": 12,
        "Wheelbarrow": 99}),
    "Office Supplies": ("Stationery, desks and organisation", {
        "Ballpoint Pens 12-Pack": 8, "Spiral Notebook": 5, "Desk Lamp": 39,
        "Ergonomic Office Chair": 249, "Standing Desk Converter": 199, "Stapler": 14,
        "Sticky Notes": 6, "File Organizer": 19, "Whiteboard": 59, "Paper Shredder": 89,
        "Label Maker": 45}),
    "Grocery": ("Coffee, tea and pantry staples", {
        "Ground Coffee": 12, "Green Tea": 7, "Extra Virgin Olive Oil": 16, "Dark Chocolate": 4,
        "Honey": 9, "Pasta": 3, "Basmati Rice": 8, "Maple Syrup": 14, "Granola": 6,
        "Almond Butter": 11, "Sea Salt": 5}),
}

BRANDS = _words("""
Voltix Nordtek Auralis Kestrel Brightwell Halden Lumora Pinecrest Everfield Solano Arbor
Redwood Maplewood Zephyr Copperline Bluebird Summit Orchard Northstar Tidewater
""")

# rating -> short review comments
REVIEW_COMMENTS = {
    1: ["Stopped working after a week.", "Not as described.", "Would not buy again."],
    2: ["Disappointing quality.", "Smaller than expected.", "Arrived damaged, replacement ok."],
    3: ["Does the job.", "Average for the price.", "Fine, nothing special."],
    4: ["Good value for money.", "Works well, fast delivery.", "Very happy with it."],
    5: ["Excellent, highly recommend!", "Exactly what I needed.", "Best purchase this year."],
}

# ----------------------------------------------------------------------------- hr

HR_LOCATIONS = [
    ("1 Canada Square", "London", "E14 5AB", "United Kingdom"),
    ("350 Fifth Avenue", "New York", "10118", "United States"),
    ("100 King Street West", "Toronto", "M5X 1A9", "Canada"),
    ("Friedrichstrasse 68", "Berlin", "10117", "Germany"),
    ("12 Rue de la Paix", "Paris", "75002", "France"),
    ("200 George Street", "Sydney", "2000", "Australia"),
    ("8 Marina Boulevard", "Singapore", "018981", "Singapore"),
]

# department -> (location index, headcount, [(job title, min salary, max salary), ...]).
# The first job of each department is its manager job.
HR_DEPARTMENTS = {
    "Executive": (1, 3, [("Chief Executive Officer", 250000, 400000),
                         ("Executive Assistant", 55000, 85000)]),
    "Engineering": (3, 80, [("Engineering Manager", 140000, 200000),
                            ("Senior Software Engineer", 110000, 170000),
                            ("Software Engineer", 70000, 130000),
                            ("QA Engineer", 60000, 100000)]),
    "Sales": (1, 60, [("Sales Manager", 90000, 150000), ("Account Executive", 60000, 110000),
                      ("Sales Representative", 40000, 80000)]),
    "Customer Support": (2, 45, [("Support Team Lead", 60000, 90000),
                                 ("Support Specialist", 38000, 62000)]),
    "Operations": (0, 30, [("Operations Manager", 95000, 145000),
                           ("Operations Analyst", 55000, 95000)]),
    "Marketing": (4, 25, [("Marketing Manager", 85000, 140000),
                          ("Marketing Specialist", 50000, 90000),
                          ("Content Writer", 45000, 75000)]),
    "Finance": (0, 20, [("Finance Manager", 100000, 160000), ("Financial Analyst", 65000, 110000),
                        ("Accountant", 55000, 95000)]),
    "Research": (5, 18, [("Research Director", 150000, 220000),
                         ("Research Scientist", 90000, 150000)]),
    "Human Resources": (0, 12, [("HR Manager", 85000, 130000), ("Recruiter", 50000, 85000),
                                ("HR Generalist", 48000, 78000)]),
    "Legal": (1, 8, [("General Counsel", 160000, 240000), ("Legal Counsel", 100000, 160000),
                     ("Paralegal", 50000, 80000)]),
}

# ----------------------------------------------------------------------------- music

GENRES = ["Rock", "Pop", "Jazz", "Hip Hop", "Electronic", "Classical", "Country", "Blues",
          "Reggae", "Metal", "Folk", "R&B"]

BAND_ADJECTIVES = _words("""
Velvet Electric Midnight Silver Broken Golden Crimson Hollow Wild Neon Quiet Lonely Burning
Paper Iron Howling Static Copper Lunar Restless Frozen Violet Savage Gentle Wandering
""")

BAND_NOUNS = _words("""
Foxes Rivers Pilots Ghosts Lanterns Wolves Tides Strangers Echoes Sparrows Kings Machines
Harbors Satellites Thieves Owls Mountains Shadows Engines Poets Comets Hearts Ravens
""")

TITLE_WORDS = _words("""
Light Heart Night Summer Fire River Dream Stone Rain Road Ocean Glass Gold Sky Dust Home
Shadow Morning Winter Heaven Echo Storm Moon Sun City Garden Mirror Ghost Silence Wire
Thunder Fever Memory Horizon Static Velvet Paper Island Desert Signal
""")

TITLE_ADJECTIVES = _words("""
Blue Endless Broken Golden Electric Silent Lost Wild Empty Bright Cold Slow Hidden Sweet
Northern Distant Restless Burning Little Last
""")

RECORD_LABELS = ["Blue Room Records", "Northern Sound", "Parlour West Records", "Echo Valley Music",
                 "Glasshouse Records", "Night Owl Recordings", "Harbor Lights", "Red Clay Records",
                 "Sonic Forest", "Midway Music Group"]

# (name, city, country, capacity)
VENUES = [
    ("Madison Square Garden", "New York", "United States", 19500),
    ("The Fillmore", "San Francisco", "United States", 1150),
    ("Red Rocks Amphitheatre", "Denver", "United States", 9525),
    ("Ryman Auditorium", "Nashville", "United States", 2362),
    ("The Troubadour", "Los Angeles", "United States", 500),
    ("Blue Note", "New York", "United States", 250),
    ("Massey Hall", "Toronto", "Canada", 2765),
    ("O2 Arena", "London", "United Kingdom", 20000),
    ("Royal Albert Hall", "London", "United Kingdom", 5272),
    ("Barrowland Ballroom", "Glasgow", "United Kingdom", 1900),
    ("Olympia", "Paris", "France", 2000),
    ("Accor Arena", "Paris", "France", 20300),
    ("Le Transbordeur", "Lyon", "France", 1800),
    ("Columbiahalle", "Berlin", "Germany", 3500),
    ("Tonhalle", "Munich", "Germany", 1500),
    ("Paradiso", "Amsterdam", "Netherlands", 1500),
    ("Ziggo Dome", "Amsterdam", "Netherlands", 17000),
    ("Razzmatazz", "Barcelona", "Spain", 3000),
    ("WiZink Center", "Madrid", "Spain", 17453),
    ("Fabrique", "Milan", "Italy", 3100),
    ("Sydney Opera House", "Sydney", "Australia", 2679),
    ("Forum Melbourne", "Melbourne", "Australia", 2000),
    ("Budokan", "Tokyo", "Japan", 14471),
    ("Vicar Street", "Dublin", "Ireland", 1050),
    ("Cirkus", "Stockholm", "Sweden", 1650),
]

ARTIST_COUNTRIES = ["United States", "United States", "United States", "United Kingdom",
                    "United Kingdom", "Canada", "Australia", "France", "Germany", "Sweden",
                    "Ireland", "Jamaica", "Japan", "Netherlands", "Spain", "Brazil"]

# fmt: on
