// ValueSets (docs/design/fhir-model.md 1.7). Expansions are computed by thrive_fhir.terminology from the
// CodeSystems and written to terminology/expansions/ by scripts/build_profiles.py.
ValueSet: ThriveGroupingVS
Id: thrive-grouping
Title: "THRIVE needs-based groupings"
Description: "All five THRIVE groupings. Bound (required) to the grouping Observation's value and the groupings a local-offer HealthcareService serves."
* insert LocalValueSet
* include codes from system ThriveGrouping

ValueSet: InvolvementVS
Id: involvement
Title: "Involvement in a shared decision"
Description: "All involvement codes. Bound (required) to the involvement components of the grouping Observation."
* insert LocalValueSet
* ^status = #draft
* include codes from system Involvement

ValueSet: GroupingChangeReasonVS
Id: grouping-change-reason
Title: "Reasons a THRIVE grouping changed"
Description: "All grouping change reasons. Bound (extensible) to the change-reason component of the grouping Observation."
* insert LocalValueSet
* ^status = #draft
* include codes from system GroupingChangeReason

ValueSet: GboGoalScoreVS
Id: gbo-goal-score
Title: "GBO goal score codes (for writing)"
Description: "The SNOMED CT Goals Based Outcomes goal 1, 2 and 3 score codes added to NHS England's CYP outcome code in 2024. The only codes written for Goal.target.measure and GBO score Observation.code; the code also fixes the goal slot."
* insert LocalValueSet
* $sct#1638531000000102 "Goal-Based Outcomes tool goal progress chart - goal 1 score"
* $sct#1638541000000106 "Goal-Based Outcomes tool goal progress chart - goal 2 score"
* $sct#1638551000000109 "Goal-Based Outcomes tool goal progress chart - goal 3 score"

ValueSet: GboGoalScoreAnyVS
Id: gbo-goal-score-any
Title: "GBO goal score codes (for import and reporting)"
Description: "All SNOMED CT GBO goal score codes NHS England accepts, including the older family and the generic code. For import and reporting only: never written."
* insert LocalValueSet
* $sct#1638531000000102 "Goal-Based Outcomes tool goal progress chart - goal 1 score"
* $sct#1638541000000106 "Goal-Based Outcomes tool goal progress chart - goal 2 score"
* $sct#1638551000000109 "Goal-Based Outcomes tool goal progress chart - goal 3 score"
* $sct#1034351000000101 "Goal Progress Chart - Child/Young Person - goal 1 score"
* $sct#1034361000000103 "Goal Progress Chart - Child/Young Person - goal 2 score"
* $sct#1034371000000105 "Goal Progress Chart - Child/Young Person - goal 3 score"
* $sct#959951000000108 "Goal Progress Chart - Child/Young Person - goal score"

ValueSet: SafetyPlanSectionVS
Id: safety-plan-section
Title: "Safety plan sections"
Description: "All safety plan sections. Bound (required) to CarePlan.activity.detail.code of the safety plan."
* insert LocalValueSet
* include codes from system SafetyPlanSection

ValueSet: SdmParticipantVS
Id: sdm-participant
Title: "Shared decision participants"
Description: "Who took part in a shared decision."
* insert LocalValueSet
* include codes from system SdmParticipant

ValueSet: LocalOfferVS
Id: local-offer
Title: "Local offer"
Description: "Local services across all local-offer-<site> CodeSystems. This build includes the example site only; each deployment adds its own CodeSystem here. No SNOMED CT procedures have been agreed yet. Bound (extensible) to ServiceRequest.code and HealthcareService.type."
* insert LocalValueSet
* include codes from system LocalOfferExample

// ---- small ValueSets the profiles bind to (not in docs/design/fhir-model.md 1.7; each replaces a free choice
// ---- that the model restricts in words) ----
ValueSet: GroupingMethodVS
Id: grouping-method
Title: "How a THRIVE grouping was reached"
Description: "Observation.method of the grouping Observation: agreed through shared decision making, or decided without agreement (then a note says why)."
* insert LocalValueSet
* ThriveConcepts#shared-decision-making "Agreed through shared decision making"
* ThriveConcepts#decided-without-agreement "Decided without agreement"

ValueSet: RequestCategoryVS
Id: request-category
Title: "Signposting or referral"
Description: "ServiceRequest.category of the signposting profile: signposting (intent proposal; the family chooses) or referral (intent order, with a Task)."
* insert LocalValueSet
* ThriveConcepts#signposting "Signposting"
* ThriveConcepts#referral "Referral"

ValueSet: RecordedObservationStatusVS
Id: recorded-observation-status
Title: "Observation status of a recorded decision or rating"
Description: "The Observation statuses a grouping or GBO score may have once recorded: final, or a correction (amended, corrected, entered-in-error). Never preliminary: a grouping is agreed, not provisional."
* insert LocalValueSet
* http://hl7.org/fhir/observation-status#final "Final"
* http://hl7.org/fhir/observation-status#amended "Amended"
* http://hl7.org/fhir/observation-status#corrected "Corrected"
* http://hl7.org/fhir/observation-status#entered-in-error "Entered in Error"

ValueSet: DecisionCompetenceVS
Id: decision-competence
Title: "Competence to decide about sharing"
Description: "All decision-competence codes. Bound (required) to the assessment in the sharing-decision-competence extension."
* insert LocalValueSet
* ^status = #draft
* include codes from system DecisionCompetence
