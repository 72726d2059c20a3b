// Whether the young person was judged competent to decide about sharing their plan: Gillick
// competence under 16, mental capacity at 16 or 17. Recorded on the sharing Consent because R4
// Consent has no element for it. Proposed codes awaiting clinical sign-off, hence status draft.
CodeSystem: DecisionCompetence
Id: decision-competence
Title: "Competence to decide about sharing"
Description: "Whether the young person was judged able to decide about sharing their own plan. Proposed codes awaiting clinical sign-off."
* insert LocalCodeSystem
* ^status = #draft
* #competent "Competent to decide" "The young person was judged able to understand and decide about sharing their plan (Gillick competent under 16; has capacity at 16 or 17)."
* #not-competent "Not competent to decide" "The young person was judged not able to decide about sharing at this time, so a person with parental responsibility decided."
