// Why a grouping changed (docs/design/fhir-model.md 1.2): a proposal, clinicians to confirm, hence draft.
CodeSystem: GroupingChangeReason
Id: grouping-change-reason
Title: "Reasons a THRIVE grouping changed"
Description: "Why a young person's THRIVE grouping differs from the one it replaces. Proposed codes awaiting clinical sign-off."
* insert LocalCodeSystem
* ^status = #draft
* #needs-changed "Needs changed" "The young person's needs have changed."
* #goals-achieved "Goals achieved" "The goals of the help have been met."
* #not-benefiting "Not benefiting from help" "The young person is not benefiting from, or not able to use, the help offered at present."
* #risk-increased "Risk increased" "Risk to the young person or others has increased."
* #risk-reduced "Risk reduced" "Risk to the young person or others has reduced."
* #yp-or-family-choice "Young person or family choice" "The young person or family chose a different kind of help."
* #service-change "Service change" "A change in the services available or involved, not in the young person's needs."
* #other "Other reason" "Another reason, given in words in the record."
