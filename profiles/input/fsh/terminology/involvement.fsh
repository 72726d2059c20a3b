// Involvement in the grouping decision (docs/design/fhir-model.md 1.2). A proposal awaiting clinical
// sign-off (docs/design/fhir-model.md section 6), hence status draft.
CodeSystem: Involvement
Id: involvement
Title: "Involvement in a shared decision"
Description: "How far a person took part in, and agreed with, a decision about the young person's THRIVE grouping. Proposed codes awaiting clinical sign-off."
* insert LocalCodeSystem
* ^status = #draft
* #agreed "Agreed" "Took part in the decision and agreed with it."
* #partly-agreed "Partly agreed" "Took part in the decision and agreed with some of it but not all of it."
* #not-agreed "Not agreed" "Took part in the decision but did not agree with it."
* #not-involved "Not involved" "Did not take part in the decision. For the young person, the record must say why."
* #not-applicable "Not applicable" "Does not apply, for example there is no parent or carer involved in the young person's care."
