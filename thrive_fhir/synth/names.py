"""Invented-name material. Combinations are random, so no generated person is a real one."""

GIVEN_NAMES = (
    "Alex", "Sam", "Jordan", "Charlie", "Riley", "Jamie", "Morgan", "Casey", "Taylor", "Robin",
    "Ellis", "Harper", "Rowan", "Quinn", "Avery", "Frankie", "Skye", "Reece", "Kai", "Noor",
    "Amara", "Zain", "Leila", "Oskar", "Mia", "Isla", "Finn", "Ava", "Theo", "Ruby",
    "Yusuf", "Priya", "Kofi", "Maya", "Eli", "Hana", "Luca", "Esme", "Arlo", "Zara",
)
FAMILY_NAMES = (
    "Example", "Sample", "Testwood", "Demoford", "Fictor", "Placeley", "Mockridge", "Proto",
    "Synthe", "Modelby", "Draftley", "Pilotson", "Trialworth", "Specimen", "Patternby", "Templeton",
)
PARENT_RELATIONSHIPS = ("MTH", "FTH", "PRN", "GRPRN", "FSTPRN", "GUARD")
