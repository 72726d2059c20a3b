// Safety-plan sections (docs/design/fhir-model.md 1.5): the Stanley-Brown sections plus one multi-agency addition.
CodeSystem: SafetyPlanSection
Id: safety-plan-section
Title: "Safety plan sections"
Description: "The sections of a co-produced safety plan: the Stanley-Brown safety planning sections plus one project addition for AMBIT-style multi-agency plans."
* insert LocalCodeSystem
* #warning-signs "Warning signs" "Thoughts, feelings, situations or behaviours that show a crisis may be building."
* #internal-coping "Things I can do on my own" "Ways to cope without contacting anyone."
* #social-distraction "People and places that take my mind off things" "People and social settings that help take the young person's mind off things."
* #people-to-ask "People I can ask for help" "Family, friends and trusted adults the young person can ask for help."
* #professionals-agencies "Professionals and services to contact" "Named workers, services, crisis lines and emergency numbers to contact."
* #safe-environment "Making my surroundings safer" "Agreed steps to reduce access to means of harm."
* #reasons-for-living "Reasons for living" "What matters to the young person."
* #agency-actions "What each agency will do" "What each agency involved will do. A project addition for AMBIT-style multi-agency plans; not a Stanley-Brown section."
