print("scenestream")
