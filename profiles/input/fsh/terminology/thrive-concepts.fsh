// Codes for elements of the THRIVE resources (docs/design/fhir-model.md 1.4): Observation code/category/method
// and component codes, CarePlan, Goal and ServiceRequest categories, Flag code, and the activity of an
// agency's confirmation of a safety plan item.
CodeSystem: ThriveConcepts
Id: thrive-concepts
Title: "THRIVE-FHIR element codes"
Description: "Codes the THRIVE-FHIR profiles use for observation codes and categories, component codes, methods, plan, goal and request categories and the risk flag. No national codes exist for these concepts."
* insert LocalCodeSystem
* #thrive "THRIVE Framework record" "A record made under the THRIVE Framework; the category of grouping Observations."
* #thrive-grouping "THRIVE needs-based grouping" "The THRIVE needs-based grouping agreed with the young person and family; the answer is a code from the thrive-grouping CodeSystem."
* #young-person-involvement "Young person's involvement in the decision" "How far the young person took part in and agreed with the grouping decision; the answer is a code from the involvement CodeSystem."
* #family-involvement "Parent or carer involvement" "How far the parent or carer took part in and agreed with the grouping decision; the answer is a code from the involvement CodeSystem."
* #not-involved-reason "Why the young person was not involved" "In words, why the grouping was decided without the young person taking part."
* #grouping-change-reason "Why the grouping changed" "Why the grouping differs from the one it replaces; the answer is a code from the grouping-change-reason CodeSystem."
* #shared-decision-making "Agreed through shared decision making" "The grouping was agreed together by the young person, family and professionals."
* #decided-without-agreement "Decided without agreement" "The grouping was recorded without agreement between the young person, family and professionals; a note says why."
* #gbo-goal "Goals Based Outcomes goal" "A goal set with the young person, in their own words, and rated 0 to 10 on the Goals Based Outcomes scale."
* #safety-plan "Co-produced safety plan" "A safety plan written with the young person and shared with the agencies they chose."
* #support-plan "THRIVE support plan" "The plan of help agreed for the current grouping: the need, what will be done and who does it."
* #signposting "Signposting" "Information about a local service the young person or family may choose to use; they decide whether to go."
* #referral "Referral" "A request to a service to take on the young person's care or a part of it."
* #agency-confirmed "Agency confirmed its safety plan item" "The agency named as holder of an item under What each agency will do confirmed that it will do it; the activity of the agency's Provenance targeting that item."
* #risk-support-alert "Getting Risk Support: safety plan in place" "The young person is in Getting Risk Support and has a safety plan; shown at first glance in every view."
