"""Invented free text in the voice of young people and clinicians, for goals and safety plans."""

GOALS = (
    "To be able to stay in school for the whole day",
    "To feel less worried when I go out with friends",
    "To get to sleep before midnight most nights",
    "To stop arguing with mum every morning",
    "To be able to talk in class without panicking",
    "To eat lunch at school",
    "To go back to football training",
    "To feel less angry and not break things",
    "To tell someone when I feel really low",
    "To get the bus on my own",
    "To not hurt myself when things get bad",
    "To spend less time in my room",
    "To understand why I get so anxious",
    "To manage my exams without shutting down",
    "To make one new friend",
)
SAFETY_ITEMS = {
    "warning-signs": (
        "Staying in my room, not answering messages, not sleeping",
        "Going quiet at school and skipping meals",
        "Scrolling all night and feeling numb",
        "Snapping at everyone and wanting to be alone",
    ),
    "internal-coping": (
        "Music with headphones, drawing, walking the dog",
        "A long shower, breathing exercises, writing it down",
        "Playing my game for a bit, then a walk round the block",
    ),
    "social-distraction": (
        "Thursday youth club; the library after school",
        "Going to my cousin's house; the park with friends",
        "Messaging my best friend about anything else",
    ),
    "people-to-ask": (
        "Mum (mobile number on her record)",
        "My nan, and my form tutor at school",
        "My older brother; my football coach",
    ),
    "professionals-agencies": (
        "24-hour crisis line 0808 157 0123 (fictional); school nurse on school days",
        "CAMHS duty line in office hours; crisis line 0808 157 0123 (fictional) at night; 999 in an emergency",
        "My key worker at the youth project; crisis line 0808 157 0123 (fictional)",
    ),
    "safe-environment": (
        "Mum keeps medicines in a locked box",
        "Sharp things kept out of my room for now",
        "Dad holds my tablets and gives me the daily dose",
    ),
    "reasons-for-living": (
        "My dog, my little sister, finishing my art course",
        "My friends and the holiday we have planned",
        "Music, my gran, and wanting to be a vet",
    ),
    "agency-actions": (
        "School: a quiet room at break times and a daily check-in with the pastoral lead",
        "Social care: weekly visit and support for mum",
        "Youth justice worker: meets me on Tuesdays and links with CAMHS",
    ),
}
NOT_INVOLVED_REASONS = (
    "Too unwell to attend; discussed with parent and to be reviewed with the young person next week",
    "Did not want to attend the meeting; views gathered by the school nurse beforehand",
    "In hospital at the time of the multi-agency meeting",
)
WITHOUT_AGREEMENT_NOTES = (
    "The young person did not agree; grouping recorded to keep them safe while we keep talking.",
    "No agreement reached with the family; to be revisited at the next review.",
)
OTHER_REASON_NOTES = ("Family moved to a new area within the service; plan carried over.",)
YP_WORDS = (
    "I want to feel normal again",
    "I just want to go back to school",
    "I want people to stop asking if I'm okay",
    "I want to sleep properly",
    "",
)
REJECTED_REASONS = (
    "Outside our criteria; suggested the online support service instead",
    "Service at capacity; family given other options",
)
