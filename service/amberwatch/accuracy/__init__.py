"""Accuracy assessment and area estimation after Olofsson et al. (2014), "Good practices for estimating area and
assessing accuracy of land change" (Remote Sensing of Environment 148:42-57): stratified random sampling
(``allocation``) and the stratified estimators of the error matrix, accuracies and class areas (``estimate``).

Pure: numbers in, numbers out (no database, no web). See docs/accuracy.md for a worked example.
"""
