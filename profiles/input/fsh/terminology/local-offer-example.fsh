// An EXAMPLE local offer (docs/design/fhir-model.md 1.2: one local-offer-<site> CodeSystem per site).
// The services are invented but of the kinds named in docs/design/thrive-framework.md; a real site publishes
// its own local-offer-<site> CodeSystem and the local-offer ValueSet includes it.
CodeSystem: LocalOfferExample
Id: local-offer-example
Title: "Local offer (example site)"
Description: "Invented local services of an example THRIVE site, for demonstrations and tests. Not real services."
* insert LocalCodeSystem
* ^experimental = true
* #online-support "Online support and counselling" "Anonymous online support, self-help materials and text-based counselling for young people."
* #single-point-of-access "Single point of access" "One place to ask for help, with a multi-agency assessment of what would help."
* #school-nursing "School nursing" "School nurses offering drop-ins, health promotion and emotional wellbeing support in schools."
* #self-help-peer-support "Self-help and peer support group" "Groups run with young people and families who have had similar experiences."
* #community-activities "Community wellbeing activities" "Community and youth activities that support wellbeing, from the community providers' Local Offer."
* #outreach "Outreach to under-served groups" "Workers who go to young people and families who find it hard to reach services."
* #mhst "Mental Health Support Team in schools" "Education mental health practitioners offering brief evidence-based help in schools and colleges."
* #childrens-wellbeing-practitioner "Children's Wellbeing Practitioner" "Guided self-help for mild to moderate anxiety, low mood and behaviour difficulties."
* #early-help "Early Help family support" "Family support from the council's Early Help service."
* #cyp-iapt-therapy "CYP IAPT evidence-based therapy" "Evidence-based psychological therapy delivered under the Children and Young People's IAPT programme, with goals and routine outcome measures."
* #specialist-camhs "Specialist CAMHS" "Longer or more specialist help from the community CAMHS team."
* #personal-health-budget "Personal Health Budget" "An agreed amount of money the young person and family can use to meet their health and wellbeing needs."
* #ambit-multi-agency "AMBIT-informed multi-agency team" "Integrated multi-agency work with joint accountability for young people at risk who are not able to use help at present."
* #crisis-line "24-hour crisis line" "A telephone line staffed day and night for young people in crisis and the people supporting them."
